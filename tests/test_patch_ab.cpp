// bench/patch_ab_table.py (the table of a same-call kernel A/B, bench/patch_ab.sh) on hand-made
// kernel_bench CSVs whose medians and changes are worked out below, and patch_ab.sh's refusal of
// a patch that does not apply to the tree (before anything is built or changed).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/run_mixlab.h"
#include "tests/source_tree.h"
#include "tests/subprocess.h"
#include "tests/temp_dir.h"

namespace {

using mixlab::testing::ProcessResult;
using mixlab::testing::TempDir;

constexpr const char* kPython = "/usr/bin/python3";
constexpr const char* kHeader = "impl,op,N,head_dim,batch_heads,fwd_ms,fwdbwd_ms,fwd_flops,fwdbwd_flops\n";

void write_csv(const TempDir& dir, const std::string& name, const std::string& rows) {
  std::ofstream(dir.file(name)) << kHeader << rows;
}

ProcessResult run_table(const TempDir& dir, const std::vector<std::string>& args) {
  const auto script = (mixlab::source_tree::root() / "bench" / "patch_ab_table.py").string();
  std::vector<std::string> argv{script};
  for (const auto& a : args) argv.push_back(a == "--" ? a : dir.file(a));
  return mixlab::testing::run_process(kPython, argv, dir.file("run"));
}

}  // namespace

// A: three runs of scan at N = 1024 (fwd 0.25, 0.31, 0.27 → median 0.27; fwd+bwd 1.0, 1.2, 1.1 →
// 1.1) and one of N = 4096 that B lacks; B: two runs (fwd 0.20, 0.24 → 0.22; fwd+bwd 0.9, 1.3 →
// 1.1).  Changes: fwd (0.22 − 0.27) / 0.27 = −18.5%, fwd+bwd 0.0%, bwd (0.88 − 0.83) / 0.83 = +6.0%.
// Spreads, the larger side's (max − min) / median: fwd A 0.06 / 0.27 = 22.2%, B 0.04 / 0.22 = 18.2%
// -> 22.2%; fwd+bwd A 0.2 / 1.1 = 18.2%, B 0.4 / 1.1 = 36.4% -> 36.4%.  matmul_peak rows are left out.
TEST(PatchAbTable, MediansPerSideAndTheChange) {
  if (!std::filesystem::exists(kPython)) GTEST_SKIP() << kPython << " is missing";
  TempDir dir("patch_ab_table");
  write_csv(dir, "a1.csv", "mixlab,matmul_peak,8192,0,1,1.38,0,1,0\nmixlab,scan,1024,16,16384,0.25,1.0,0,0\n"
                           "mixlab,scan,4096,16,16384,1.0,4.0,0,0\n");
  write_csv(dir, "a2.csv", "mixlab,scan,1024,16,16384,0.31,1.2,0,0\n");
  write_csv(dir, "a3.csv", "mixlab,scan,1024,16,16384,0.27,1.1,0,0\n");
  write_csv(dir, "b1.csv", "mixlab,scan,1024,16,16384,0.20,0.9,0,0\n");
  write_csv(dir, "b2.csv", "mixlab,scan,1024,16,16384,0.24,1.3,0,0\n");
  const auto result = run_table(dir, {"a1.csv", "a2.csv", "a3.csv", "--", "b1.csv", "b2.csv"});
  ASSERT_TRUE(result.exited_with(0)) << result.err;
  EXPECT_NE(result.out.find("A: 3 run(s), B: 2 run(s)"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("| mixlab | scan | 1024 | 16 | 0.270 | 0.220 | -18.5% | 1.100 | 1.100 | +0.0% | +6.0% | 22.2% | 36.4% |"),
            std::string::npos)
      << result.out;
  EXPECT_NE(result.out.find("| mixlab | scan | 4096 | 16 | only in A |"), std::string::npos) << result.out;
  EXPECT_EQ(result.out.find("matmul_peak"), std::string::npos) << result.out;
}

TEST(PatchAbTable, WithoutBothSidesItSaysHowToCallIt) {
  if (!std::filesystem::exists(kPython)) GTEST_SKIP() << kPython << " is missing";
  TempDir dir("patch_ab_table_usage");
  write_csv(dir, "a1.csv", "mixlab,scan,1024,16,16384,0.25,1.0,0,0\n");
  const auto result = run_table(dir, {"a1.csv"});
  EXPECT_FALSE(result.exited_with(0));
  EXPECT_NE(result.err.find("usage: patch_ab_table.py A.csv"), std::string::npos) << result.err;
}

// A patch whose context is not in the tree is refused by `git apply --check` before the script
// builds or changes anything: the file it names is left as it was.
TEST(PatchAb, APatchThatDoesNotApplyIsRefusedBeforeAnythingChanges) {
  if (!std::filesystem::exists("/usr/bin/git")) GTEST_SKIP() << "git is missing";
  TempDir dir("patch_ab_refuse");
  std::filesystem::create_directories(dir.file("build"));
  std::ofstream(dir.file("build/build.ninja")) << "# a configured build stands here\n";
  const auto target = mixlab::source_tree::root() / "bench" / "patch_ab_table.py";
  const std::string before = mixlab::testing::slurp(target.string());
  std::ofstream(dir.file("bad.patch")) << "--- a/bench/patch_ab_table.py\n+++ b/bench/patch_ab_table.py\n"
                                          "@@ -1,2 +1,2 @@\n-no such line in the file\n+a replacement\n"
                                          " nor this one\n";
  const auto script = (mixlab::source_tree::root() / "bench" / "patch_ab.sh").string();
  const auto result = mixlab::testing::run_process(
      "/bin/bash", {script, dir.file("build"), dir.file("out"), dir.file("bad.patch"), "scan"}, dir.file("run"));
  EXPECT_FALSE(result.exited_with(0)) << result.out;
  EXPECT_NE(result.err.find("patch failed"), std::string::npos) << result.err;
  EXPECT_EQ(result.out.find("== A"), std::string::npos) << result.out;  // nothing built
  EXPECT_EQ(mixlab::testing::slurp(target.string()), before);
}

// Without OPS on the command line the patch's header line `ops:` gives them (the run goes on to
// `git apply --check`, which refuses this patch); without either it is an error saying so.
TEST(PatchAb, OpsComeFromThePatchHeaderOrAreAnError) {
  if (!std::filesystem::exists("/usr/bin/git")) GTEST_SKIP() << "git is missing";
  TempDir dir("patch_ab_header");
  std::filesystem::create_directories(dir.file("build"));
  std::ofstream(dir.file("build/build.ninja")) << "# a configured build stands here\n";
  const std::string diff = "diff --git a/bench/patch_ab_table.py b/bench/patch_ab_table.py\n"
                           "--- a/bench/patch_ab_table.py\n+++ b/bench/patch_ab_table.py\n"
                           "@@ -1,1 +1,1 @@\n-no such line in the file\n+a replacement\n";
  std::ofstream(dir.file("with.patch")) << "What it tries.\nops: scan\ntests: *Scan*\n\n" << diff;
  std::ofstream(dir.file("without.patch")) << diff;
  const auto script = (mixlab::source_tree::root() / "bench" / "patch_ab.sh").string();
  const auto with = mixlab::testing::run_process(
      "/bin/bash", {script, dir.file("build"), dir.file("out"), dir.file("with.patch")}, dir.file("with"));
  EXPECT_FALSE(with.exited_with(0));
  EXPECT_NE(with.err.find("patch failed"), std::string::npos) << with.err;
  const auto without = mixlab::testing::run_process(
      "/bin/bash", {script, dir.file("build"), dir.file("out"), dir.file("without.patch")}, dir.file("without"));
  EXPECT_FALSE(without.exited_with(0));
  EXPECT_NE(without.err.find("has no 'ops:' header line"), std::string::npos) << without.err;
}

// MIXLAB_AB_ROUNDS sets the rounds of A, B; anything but a whole number ≥ 1 is refused, saying which
// variable and what it takes, before anything is built or applied.
TEST(PatchAb, RoundsMustBeAWholeNumberOfAtLeastOne) {
  if (!std::filesystem::exists("/usr/bin/git")) GTEST_SKIP() << "git is missing";
  TempDir dir("patch_ab_rounds");
  std::filesystem::create_directories(dir.file("build"));
  std::ofstream(dir.file("build/build.ninja")) << "# a configured build stands here\n";
  std::ofstream(dir.file("any.patch")) << "ops: scan\n";
  const auto script = (mixlab::source_tree::root() / "bench" / "patch_ab.sh").string();
  for (const std::string rounds : {"0", "two", "-1"}) {
    const auto result = mixlab::testing::run_process(
        "/bin/bash", {"-c", "MIXLAB_AB_ROUNDS=\"$1\" exec bash \"$2\" \"$3\" \"$4\" \"$5\"", "rounds", rounds, script,
                      dir.file("build"), dir.file("out"), dir.file("any.patch")},
        dir.file("run" + rounds));
    EXPECT_TRUE(result.exited_with(2)) << rounds << ": " << result.err;
    EXPECT_NE(result.err.find("MIXLAB_AB_ROUNDS must be a whole number ≥ 1 (got '" + rounds + "')"), std::string::npos)
        << result.err;
    EXPECT_EQ(result.out.find("== A"), std::string::npos) << result.out;
  }
}

// Every experiment kept as a patch (bench/experiments/) still applies to the tree (a change to the
// file it patches must bring the patch along, rebased, or drop it) and names the ops it times, which
// with its kernel_bench arguments (`args:`) name shapes that `mixlab kernel_bench` lists.
TEST(PatchAb, EveryExperimentPatchAppliesToTheTree) {
  if (!std::filesystem::exists("/usr/bin/git")) GTEST_SKIP() << "git is missing";
  TempDir dir("patch_ab_experiments");
  const auto root = mixlab::source_tree::root();
  int patches = 0;
  const auto folder = root / "bench" / "experiments";  // gone (git keeps no empty folder) when none is pending
  if (!std::filesystem::is_directory(folder)) GTEST_SKIP() << "no experiment pending: " << folder << " is absent";
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    if (entry.path().extension() != ".patch") continue;
    ++patches;
    const auto result = mixlab::testing::run_process(
        "/bin/bash", {"-c", "cd \"$1\" && git apply --check \"$2\"", "check", root.string(), entry.path().string()},
        dir.file("run" + std::to_string(patches)));
    EXPECT_TRUE(result.exited_with(0)) << entry.path() << ": " << result.err;
    const std::string text = mixlab::testing::slurp(entry.path().string());
    const std::string header = text.substr(0, text.find("diff --git"));
    EXPECT_NE(header.find("\nops: "), std::string::npos)
        << entry.path() << " says nothing of the ops to time (an `ops:` line before its first diff)";
    // The ops and `args:` (kernel_bench's arguments, when given) name shapes kernel_bench has: what
    // patch_ab.sh will time, read here without a GPU (--list-ops).
    auto line = [&](const std::string& key) {
      const auto at = header.find("\n" + key + ": ");
      return at == std::string::npos ? std::string()
                                     : header.substr(at + key.size() + 3, header.find('\n', at + 1) - at - key.size() - 3);
    };
    const auto listed = mixlab::testing::run_mixlab(dir.path.string(),
                                                    "kernel_bench --list-ops --ops='" + line("ops") + "' " + line("args"));
    EXPECT_EQ(listed.status, 0) << entry.path() << ": " << listed.output;
    EXPECT_NE(listed.output.find("\"op\""), std::string::npos) << entry.path() << ": no shape listed";
  }
  EXPECT_GE(patches, 1) << folder << " holds no .patch: remove the folder once its last experiment has landed";
}
