// bench/ptx_loop_mix.py (the static instruction count of docs/PERF.md's scan budget) on a
// hand-written PTX kernel whose loops and instructions are known: two nested loops, inline
// assembly, and a decoy kernel before it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/source_tree.h"
#include "tests/subprocess.h"
#include "tests/temp_dir.h"

namespace {

using mixlab::testing::ProcessResult;
using mixlab::testing::TempDir;

constexpr const char* kPython = "/usr/bin/python3";

// decoy_kernel has a loop of 2 ex2; wanted_kernel an outer loop (7 instructions, 2 ex2) around an
// inner one (4 instructions: ex2, cvt in inline assembly, fma, the branch back).
constexpr const char* kPtx = R"(.version 8.0
.target sm_90a
.entry decoy_kernel()
{
$L__BB0_1:
	ex2.approx.ftz.f32 	%f1, %f2;
	ex2.approx.ftz.f32 	%f3, %f1;
	@%p1 bra 	$L__BB0_1;
	ret;
}
.visible .entry wanted_kernel(
	.param .u64 wanted_kernel_param_0
)
{
	.reg .f32 	%f<8>;
	mov.u32 	%r1, 0;
$L__BB1_1:
	add.s32 	%r1, %r1, 1;
$L__BB1_2:
	// the inner loop
	ex2.approx.ftz.f32 	%f1, %f2;
	// begin inline asm
	{ cvt.f32.bf16 %f3, %rs1;}
	// end inline asm
	fma.rn.ftz.f32 	%f4, %f1, %f3, %f4;
	@%p1 bra 	$L__BB1_2;
	ex2.approx.ftz.f32 	%f5, %f4;
	@%p2 bra.uni 	$L__BB1_1;
	ret;
}
)";

ProcessResult run_mix(const TempDir& dir, const std::string& kernel) {
  std::ofstream(dir.file("k.ptx")) << kPtx;
  const auto script = (mixlab::source_tree::root() / "bench" / "ptx_loop_mix.py").string();
  return mixlab::testing::run_process(kPython, {script, dir.file("k.ptx"), kernel}, dir.file("run"));
}

}  // namespace

TEST(PtxLoopMix, CountsTheInnermostLoopWithExponentialsOfTheNamedKernel) {
  if (!std::filesystem::exists(kPython)) GTEST_SKIP() << kPython << " is missing";
  TempDir dir("ptx_loop_mix");
  const auto result = run_mix(dir, "wanted");
  ASSERT_TRUE(result.exited_with(0)) << result.err;
  // Both loops of wanted_kernel, none of decoy_kernel: label, instructions, ex2.
  EXPECT_NE(result.out.find("  $L__BB1_1 7 2\n"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("  $L__BB1_2 4 1\n"), std::string::npos) << result.out;
  EXPECT_EQ(result.out.find("$L__BB0_1"), std::string::npos) << result.out;
  // The mix is the inner loop's, with the inline assembly's cvt counted and suffixes dropped.
  EXPECT_NE(result.out.find("mix of $L__BB1_2 (4 instructions):"), std::string::npos) << result.out;
  for (const char* op : {"ex2", "cvt", "fma", "bra"})
    EXPECT_NE(result.out.find("  " + std::string(op) + std::string(16 - std::string(op).size(), ' ') + " 1\n"),
              std::string::npos)
        << op << "\n" << result.out;
}

TEST(PtxLoopMix, AKernelThatIsNotThereIsAnErrorNamingIt) {
  if (!std::filesystem::exists(kPython)) GTEST_SKIP() << kPython << " is missing";
  TempDir dir("ptx_loop_mix_missing");
  const auto result = run_mix(dir, "no_such_kernel");
  EXPECT_FALSE(result.exited_with(0));
  EXPECT_NE(result.err.find("no kernel whose name contains 'no_such_kernel'"), std::string::npos) << result.err;
}
