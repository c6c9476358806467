// bench/patch_ab_table.py (the table of a same-call kernel A/B, bench/patch_ab.sh) on hand-made
// kernel_bench CSVs whose medians and changes are worked out below, patch_ab.sh's refusal of a
// patch that does not apply to the tree (before anything is built or changed), and patch_ab.sh end
// to end on a stand-in project (its table, its timeouts, the tree left as it was).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
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

// MIXLAB_AB_ROUNDS sets the rounds of A, B, MIXLAB_AB_TEST_TIMEOUT and MIXLAB_AB_RUN_TIMEOUT the
// seconds B's tests and each timed run may take; anything but a whole number ≥ 1 is refused, saying
// which variable and what it takes, before anything is built or applied.
TEST(PatchAb, RoundsAndTimeoutsMustBeWholeNumbersOfAtLeastOne) {
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
  for (const std::string variable : {"MIXLAB_AB_TEST_TIMEOUT", "MIXLAB_AB_RUN_TIMEOUT"}) {
    const auto result = mixlab::testing::run_process(
        "/bin/bash", {"-c", "env \"$1=0\" bash \"$2\" \"$3\" \"$4\" \"$5\"", "timeout", variable, script,
                      dir.file("build"), dir.file("out"), dir.file("any.patch")},
        dir.file("run" + variable));
    EXPECT_TRUE(result.exited_with(2)) << variable << ": " << result.err;
    EXPECT_NE(result.err.find(variable + " must be a whole number ≥ 1 (got '0')"), std::string::npos) << result.err;
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

// patch_ab.sh end to end, on the CPU: a stand-in project configured with CMake (a `mixlab` whose
// `kernel_bench` writes one CSV row with the forward time its shared library returns, and a
// `mixlab_tests` that passes) is the BUILD, and each patch below changes that library.  The patch
// applies to the tree the build was configured from, and every run leaves that tree as it was and
// the build as A's, nothing in it to recompile.
namespace {

constexpr const char* kStandInLibrary =
    "double forward_ms() { return 2.0; }\n"
    "int test_hang_seconds() { return 0; }\n"
    "int bench_hang_seconds() { return 0; }\n";

// A patch of the stand-in's library that replaces its line `line` (1-3) with `replacement`.
std::string library_patch(int line, const std::string& replacement) {
  std::istringstream lines(kStandInLibrary);
  std::string context, text;
  for (int i = 1; std::getline(lines, text); ++i) context += (i == line ? "-" + text + "\n+" + replacement : " " + text) + "\n";
  return "ops: scan\ntests: *\n\ndiff --git a/lib.cpp b/lib.cpp\n--- a/lib.cpp\n+++ b/lib.cpp\n@@ -1,3 +1,3 @@\n" + context;
}

struct StandInBuild {
  mixlab::testing::TempDir dir;
  bool configured = false;
  explicit StandInBuild(const std::string& name) : dir(name) {
    namespace fs = std::filesystem;
    fs::create_directories(dir.file("tree"));
    std::ofstream(dir.file("tree/lib.cpp")) << kStandInLibrary;
    std::ofstream(dir.file("tree/CMakeLists.txt"))
        << "cmake_minimum_required(VERSION 3.13)\nproject(stand_in CXX)\n"
           "add_library(mixlab_lib SHARED lib.cpp)\n"
           "add_executable(mixlab main.cpp)\ntarget_link_libraries(mixlab mixlab_lib)\n"
           "add_executable(mixlab_tests tests.cpp)\ntarget_link_libraries(mixlab_tests mixlab_lib)\n";
    // kernel_bench OUT.csv --ops=...: one scan row, forward+backward four times the forward.
    std::ofstream(dir.file("tree/main.cpp"))
        << "#include <unistd.h>\n#include <fstream>\ndouble forward_ms(); int bench_hang_seconds();\n"
           "int main(int, char** argv) {\n  sleep(bench_hang_seconds());\n  std::ofstream(argv[2])\n"
           "      << \"impl,op,N,head_dim,batch_heads,fwd_ms,fwdbwd_ms,fwd_flops,fwdbwd_flops\\n\"\n"
           "      << \"mixlab,scan,1024,16,16384,\" << forward_ms() << ',' << 4 * forward_ms() << \",0,0\\n\";\n}\n";
    std::ofstream(dir.file("tree/tests.cpp"))
        << "#include <unistd.h>\n#include <cstdio>\nint test_hang_seconds();\n"
           "int main() {\n  sleep(test_hang_seconds());\n  std::puts(\"[  PASSED  ] 1 test.\");\n}\n";
    const auto configure = mixlab::testing::run_process(
        "/bin/bash", {"-c", "cmake -S \"$1\" -B \"$2\" -DCMAKE_BUILD_TYPE=Release", "configure", dir.file("tree"), dir.file("build")},
        dir.file("configure"));
    configured = configure.exited_with(0);
    EXPECT_TRUE(configured) << configure.out << configure.err;
  }
  // patch_ab.sh BUILD OUT PATCH with `environment` (e.g. "MIXLAB_AB_ROUNDS=1").
  mixlab::testing::ProcessResult ab(const std::string& patch, const std::string& environment) const {
    std::ofstream(dir.file("experiment.patch")) << patch;
    const auto script = (mixlab::source_tree::root() / "bench" / "patch_ab.sh").string();
    return mixlab::testing::run_process(
        "/bin/bash", {"-c", "env " + environment + " bash \"$1\" \"$2\" \"$3\" \"$4\"", "ab", script, dir.file("build"),
                      dir.file("out"), dir.file("experiment.patch")},
        dir.file("ab"));
  }
  std::string library() const { return mixlab::testing::slurp(dir.file("tree/lib.cpp")); }
  // The build folder is A's again: building it compiles nothing, and its kernel_bench reports A's
  // 2.0 ms.
  void expect_a_build_without_recompiling() const {
    const auto rebuild = mixlab::testing::run_process(
        "/bin/bash", {"-c", "cmake --build \"$1\" --target mixlab 2>&1 && \"$1/mixlab\" kernel_bench \"$2\" --ops=scan", "rebuild",
                      dir.file("build"), dir.file("a_again.csv")},
        dir.file("rebuild"));
    ASSERT_TRUE(rebuild.exited_with(0)) << rebuild.out << rebuild.err;
    EXPECT_EQ(rebuild.out.find("Building CXX object"), std::string::npos) << rebuild.out;
    EXPECT_NE(mixlab::testing::slurp(dir.file("a_again.csv")).find("mixlab,scan,1024,16,16384,2,8,0,0"), std::string::npos);
  }
};

bool have_build_tools() { return std::system("{ command -v git && command -v cmake && command -v c++; } >/dev/null 2>&1") == 0; }

}  // namespace

// B's library returns 1.0 ms where A's returns 2.0: two rounds each, the table gives -50.0% for the
// forward (2.000 -> 1.000), the forward+backward (8.000 -> 4.000) and the backward (6 -> 3), with no
// spread between runs of a side; afterwards the build is A's without a rebuild.
TEST(PatchAb, EndToEndTheTableShowsTheChangeAndTheTreeIsRestored) {
  if (!have_build_tools()) GTEST_SKIP() << "git, cmake or c++ is missing";
  StandInBuild stand_in("patch_ab_end_to_end");
  ASSERT_TRUE(stand_in.configured);
  const auto result = stand_in.ab(library_patch(1, "double forward_ms() { return 1.0; }"), "MIXLAB_AB_ROUNDS=2");
  ASSERT_TRUE(result.exited_with(0)) << result.out << result.err;
  EXPECT_NE(result.out.find("| mixlab | scan | 1024 | 16 | 2.000 | 1.000 | -50.0% | 8.000 | 4.000 | -50.0% | -50.0% | 0.0% | 0.0% |"),
            std::string::npos)
      << result.out;
  for (const char* run : {"a1.csv", "b1.csv", "a2.csv", "b2.csv", "patch_ab.md"})
    EXPECT_TRUE(std::filesystem::exists(stand_in.dir.file(std::string("out/") + run))) << run;
  EXPECT_EQ(stand_in.library(), kStandInLibrary);
  stand_in.expect_a_build_without_recompiling();
}

// A B whose tests never finish is killed after MIXLAB_AB_TEST_TIMEOUT seconds and not timed; one
// whose timed run never finishes is killed after MIXLAB_AB_RUN_TIMEOUT.  Each says which, and the
// tree is as it was.
TEST(PatchAb, AHangingTestOrRunIsKilledAtItsTimeout) {
  if (!have_build_tools()) GTEST_SKIP() << "git, cmake or c++ is missing";
  StandInBuild stand_in("patch_ab_hang");
  ASSERT_TRUE(stand_in.configured);
  const auto tests = stand_in.ab(library_patch(2, "int test_hang_seconds() { return 600; }"), "MIXLAB_AB_TEST_TIMEOUT=2");
  EXPECT_TRUE(tests.exited_with(1)) << tests.out << tests.err;
  EXPECT_NE(tests.err.find("B's tests (*) did not finish in 2 s (MIXLAB_AB_TEST_TIMEOUT"), std::string::npos) << tests.err;
  EXPECT_EQ(tests.out.find("== a1"), std::string::npos) << tests.out;  // not timed
  EXPECT_EQ(stand_in.library(), kStandInLibrary);
  const auto runs = stand_in.ab(library_patch(3, "int bench_hang_seconds() { return 600; }"), "MIXLAB_AB_RUN_TIMEOUT=2");
  EXPECT_TRUE(runs.exited_with(1)) << runs.out << runs.err;
  EXPECT_NE(runs.err.find("run b1 did not finish in 2 s (MIXLAB_AB_RUN_TIMEOUT"), std::string::npos) << runs.err;
  EXPECT_EQ(stand_in.library(), kStandInLibrary);
  stand_in.expect_a_build_without_recompiling();
}
