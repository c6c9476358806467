// bench/ptx_loop_mix.py (the static instruction count of docs/PERF.md's scan budget) on a
// hand-written PTX kernel and a hand-written SASS listing whose loops and instructions are known:
// two nested loops, inline assembly (PTX), a branch to itself (SASS), and a decoy kernel before.
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

// The same shape as cuobjdump -sass prints it: wanted_kernel's outer loop runs from 0x10 to the
// branch at 0x70 (7 instructions, 2 MUFU.EX2), its inner loop from 0x20 to 0x50 (4, 1); the
// closing `BRA 0x80` branches to itself, which is not a loop; decoy_kernel's loop comes first.
constexpr const char* kSass = R"sass(
	code for sm_90a
		Function : decoy_kernel
	.headerflags	@"EF_CUDA_ACCELERATORS EF_CUDA_SM90 EF_CUDA_VIRTUAL_SM(EF_CUDA_SM90)"
        /*0000*/                   MUFU.EX2 R1, R2 ;                  /* 0x0000000200017308 */
                                                                      /* 0x000e240000000800 */
        /*0010*/               @P0 BRA 0x0 ;                          /* 0xfffffffc00f80947 */
                                                                      /* 0x000fea000383ffff */
        /*0020*/                   EXIT ;                             /* 0x000000000000794d */
		Function : wanted_kernel
	.headerflags	@"EF_CUDA_ACCELERATORS EF_CUDA_SM90 EF_CUDA_VIRTUAL_SM(EF_CUDA_SM90)"
        /*0000*/                   IMAD.MOV.U32 R1, RZ, RZ, RZ ;      /* 0x000000ffff017224 */
        /*0010*/                   IADD3 R1, R1, 0x1, RZ ;            /* 0x0000000101017810 */
        /*0020*/                   MUFU.EX2 R3, R2 ;                  /* 0x0000000200037308 */
        /*0030*/                   IMAD.U32 R4, R5, 0x10000, RZ ;     /* 0x0001000005047824 */
        /*0040*/                   FFMA.FTZ R6, R3, R4, R6 ;          /* 0x0000000403067223 */
        /*0050*/              @!P0 BRA 0x20 ;                         /* 0xfffffffc00f08947 */
        /*0060*/                   MUFU.EX2 R7, R6 ;                  /* 0x0000000600077308 */
        /*0070*/               @P1 BRA 0x10 ;                         /* 0xfffffffc00e41947 */
        /*0080*/                   BRA 0x80;                          /* 0xfffffffc00fc7947 */
        /*0090*/                   EXIT ;                             /* 0x000000000000794d */
)sass";

ProcessResult run_mix(const TempDir& dir, const std::string& kernel, const char* text = kPtx) {
  std::ofstream(dir.file("k.listing")) << text;
  const auto script = (mixlab::source_tree::root() / "bench" / "ptx_loop_mix.py").string();
  return mixlab::testing::run_process(kPython, {script, dir.file("k.listing"), kernel}, dir.file("run"));
}

// "  OPCODE<padding to 16> COUNT\n", as the mix prints it.
std::string mix_line(const std::string& op, int count) {
  return "  " + op + std::string(op.size() < 16 ? 16 - op.size() : 0, ' ') + " " + std::to_string(count) + "\n";
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
    EXPECT_NE(result.out.find(mix_line(op, 1)), std::string::npos) << op << "\n" << result.out;
}

TEST(PtxLoopMix, ReadsSassByBranchAddresses) {
  if (!std::filesystem::exists(kPython)) GTEST_SKIP() << kPython << " is missing";
  TempDir dir("ptx_loop_mix_sass");
  const auto result = run_mix(dir, "wanted", kSass);
  ASSERT_TRUE(result.exited_with(0)) << result.err;
  EXPECT_NE(result.out.find("10 instructions in the kernel;"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("  0x10 7 2\n"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("  0x20 4 1\n"), std::string::npos) << result.out;
  EXPECT_EQ(result.out.find("  0x80 "), std::string::npos) << result.out;  // a branch to itself
  EXPECT_EQ(result.out.find("  0x0 "), std::string::npos) << result.out;   // decoy_kernel's loop
  EXPECT_NE(result.out.find("mix of 0x20 (4 instructions):"), std::string::npos) << result.out;
  for (const char* op : {"MUFU.EX2", "IMAD.U32", "FFMA.FTZ", "BRA"})
    EXPECT_NE(result.out.find(mix_line(op, 1)), std::string::npos) << op << "\n" << result.out;
}

TEST(PtxLoopMix, AKernelThatIsNotThereIsAnErrorNamingIt) {
  if (!std::filesystem::exists(kPython)) GTEST_SKIP() << kPython << " is missing";
  TempDir dir("ptx_loop_mix_missing");
  const auto result = run_mix(dir, "no_such_kernel");
  EXPECT_FALSE(result.exited_with(0));
  EXPECT_NE(result.err.find("no kernel whose name contains 'no_such_kernel'"), std::string::npos) << result.err;
}
