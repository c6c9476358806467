// scripts/device_call.sh keeps a device call within its limit: every step runs under a timeout of
// what is left (less a margin), a step with too little left is skipped, and the archive and the
// closing line still run.  Session 37 lost a call's files when a step started with 20 s left, was
// handed `timeout 0` (no limit) and ran into the device's own kill.  Steps here are plain bash
// commands (the script's catch-all step), so this runs without a GPU.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "tests/source_tree.h"
#include "tests/subprocess.h"
#include "tests/temp_dir.h"

namespace {

using mixlab::testing::ProcessResult;
using mixlab::testing::TempDir;

// scripts/device_call.sh LIMIT STEP... with OUT = dir/out; the wall time it took, in seconds.
ProcessResult device_call(const TempDir& dir, const std::vector<std::string>& limit_and_steps, double& seconds) {
  std::filesystem::create_directories(dir.file("out"));
  const auto script = (mixlab::source_tree::root() / "scripts" / "device_call.sh").string();
  std::vector<std::string> argv{"OUT=" + dir.file("out"), "/bin/bash", script};
  argv.insert(argv.end(), limit_and_steps.begin(), limit_and_steps.end());
  const auto start = std::chrono::steady_clock::now();
  auto result = mixlab::testing::run_process("/usr/bin/env", argv, dir.file("run"));
  seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace

// LIMIT 16: the first step (a 30 s sleep) gets 16 − 5 = 11 s and is cut there; the second, with
// about 5 s left (a step needs its margin + 10 s), is skipped, its file never made; the call ends
// inside its 16 s.
TEST(DeviceCall, AStepPastTheLimitIsCutAndTheRestSkipped) {
  if (!std::filesystem::exists("/usr/bin/timeout")) GTEST_SKIP() << "coreutils' timeout is missing";
  TempDir dir("device_call_limit");
  double seconds = 0;
  const auto result = device_call(dir, {"16", "sleep 30", "touch \"$OUT/late\""}, seconds);
  ASSERT_TRUE(result.exited_with(0)) << result.out << result.err;
  EXPECT_LT(seconds, 16.0) << result.out;
  EXPECT_GE(seconds, 10.0) << "the first step was not given its 11 s: " << result.out;
  EXPECT_NE(result.out.find("== skipped:"), std::string::npos) << result.out;
  EXPECT_FALSE(std::filesystem::exists(dir.file("out/late"))) << result.out;
  EXPECT_NE(result.out.find("== done at +"), std::string::npos) << result.out;
}

// A bash step sees MIXLAB_CALL_END, the epoch second the call's limit ends (start + LIMIT).
TEST(DeviceCall, AStepSeesWhenTheCallEnds) {
  TempDir dir("device_call_end");
  const auto before = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  double seconds = 0;
  const auto result = device_call(dir, {"100", "echo \"end=$MIXLAB_CALL_END\""}, seconds);
  ASSERT_TRUE(result.exited_with(0)) << result.out << result.err;
  const auto at = result.out.rfind("end=");  // the step's output, after its header line
  ASSERT_NE(at, std::string::npos) << result.out;
  const long end = std::stol(result.out.substr(at + 4));
  EXPECT_GE(end, before + 100) << result.out;
  EXPECT_LE(end, before + 100 + static_cast<long>(seconds) + 1) << result.out;
}

// `decodeab:VARIABLE` hands its fields to bench/decode_ab.sh, whose refusal of a variable that is
// not a MIXLAB_ switch comes back in the call's output (no build, no GPU needed for the refusal).
TEST(DeviceCall, ADecodeAbStepPassesItsVariableToTheScript) {
  TempDir dir("device_call_decodeab");
  double seconds = 0;
  const auto result = device_call(dir, {"60", "decodeab:PDL:1:0"}, seconds);
  ASSERT_TRUE(result.exited_with(0)) << result.out << result.err;
  EXPECT_NE(result.out.find("'PDL' is not a MIXLAB_ variable"), std::string::npos) << result.out;
}
