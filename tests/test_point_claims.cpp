// Claims on running points: a point whose process died (as under the OOM killer) is detected on
// resume, retried, and after --max-attempts deaths recorded `killed` with what it was running,
// while the sweep goes on; a live claim is left alone, so unsharded workers sharing one database
// never run a point twice; Ctrl-C ends the point in flight cleanly.

#include "tests/subprocess.h"
#include "tests/temp_dir.h"
#include "harness/config.h"
#include "harness/device.h"
#include "harness/point_claim.h"
#include "harness/sweep.h"

#include <gtest/gtest.h>

#include <csignal>
#include <chrono>
#include <fstream>
#include <thread>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

using mixlab::testing::TempDir;

PointRecord record(const std::string& id) { return {id, "claims", "label " + id, "attention", "{}"}; }

std::string text_of(Store& store, const std::string& sql) {
  Statement q(store.handle(), sql);
  return q.step() ? q.text(0) : "";
}

// The pid of a process that has exited (its child reaped): a claim by it is a dead claim.
int64_t dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  return child;
}

void set_claim(Store& store, const std::string& id, int64_t pid, const std::string& host, double heartbeat_age_s) {
  Statement update(store.handle(),
                   "UPDATE points SET claim_pid = ?, claim_host = ?, heartbeat_s = ? WHERE point_id = ?");
  update.bind(1, pid).bind(2, host).bind(3, unix_seconds() - heartbeat_age_s).bind(4, id).run();
}

TEST(PointClaimTest, ADeadProcessIsRetriedThenRecordedKilled) {
  TempDir dir("claims_dead");
  Store store(dir.file("r.db"));
  ASSERT_EQ(store.claim_point(record("a"), 1, false, 2).outcome, PointClaim::Outcome::claimed);
  store.set_claim_stage("a", "forward_backward N=4096");
  set_claim(store, "a", dead_pid(), host_name(), 1.0);  // died a second ago, heartbeat fresh

  const PointClaim second = store.claim_point(record("a"), 1, false, 2);
  ASSERT_EQ(second.outcome, PointClaim::Outcome::claimed);
  EXPECT_EQ(second.attempt, 2);
  EXPECT_NE(second.detail.find("died while running forward_backward N=4096"), std::string::npos) << second.detail;

  store.set_claim_stage("a", "decode N=512");
  set_claim(store, "a", dead_pid(), host_name(), 1.0);
  const PointClaim third = store.claim_point(record("a"), 1, false, 2);
  ASSERT_EQ(third.outcome, PointClaim::Outcome::killed);
  EXPECT_EQ(text_of(store, "SELECT status FROM points WHERE point_id = 'a'"), "killed");
  const std::string error = text_of(store, "SELECT error FROM points WHERE point_id = 'a'");
  EXPECT_NE(error.find("died 2 times while running decode N=512"), std::string::npos) << error;
  // Skipped from now on, until forced.
  EXPECT_EQ(store.claim_point(record("a"), 1, false, 2).outcome, PointClaim::Outcome::killed);
  EXPECT_EQ(store.claim_point(record("a"), 1, true, 2).outcome, PointClaim::Outcome::claimed);
}

TEST(PointClaimTest, ALiveClaimIsBusyAndAStaleOneIsNot) {
  TempDir dir("claims_live");
  Store store(dir.file("r.db"));
  ASSERT_EQ(store.claim_point(record("a"), 1, false, 2).outcome, PointClaim::Outcome::claimed);
  // This host, a live process (our parent) with a fresh heartbeat: busy.
  set_claim(store, "a", ::getppid(), host_name(), 1.0);
  const PointClaim busy = store.claim_point(record("a"), 1, false, 2);
  EXPECT_EQ(busy.outcome, PointClaim::Outcome::busy);
  EXPECT_NE(busy.detail.find("pid " + std::to_string(::getppid())), std::string::npos) << busy.detail;
  EXPECT_EQ(store.claim_point(record("a"), 1, /*force=*/true, 2).outcome, PointClaim::Outcome::busy);
  // Another host with a fresh heartbeat: busy (its pid cannot be checked from here).
  set_claim(store, "a", 1, "elsewhere", kClaimStaleSeconds / 2);
  EXPECT_EQ(store.claim_point(record("a"), 1, false, 2).outcome, PointClaim::Outcome::busy);
  // Another host whose heartbeat stopped: dead.
  set_claim(store, "a", 1, "elsewhere", kClaimStaleSeconds + 1);
  EXPECT_EQ(store.claim_point(record("a"), 1, false, 3).outcome, PointClaim::Outcome::claimed);
  // A heartbeat keeps a claim fresh; it touches only this process's own claim.
  set_claim(store, "a", ::getpid(), host_name(), kClaimStaleSeconds + 1);
  store.heartbeat("a");
  Statement age(store.handle(), "SELECT ? - heartbeat_s FROM points WHERE point_id = 'a'");
  age.bind(1, unix_seconds());
  ASSERT_TRUE(age.step());
  EXPECT_LT(age.real(0), 5.0);
}

#ifdef MIXLAB_BINARY
// Two grid points; each measurement runs for at least `seconds`.
void write_spec(const std::string& path, double seconds, int points = 2) {
  json spec = json::parse(R"({
    "name": "claims",
    "base": {"model": {"vocab_size": 32, "d_model": 8, "n_heads": 2, "n_layers": 1,
                       "pattern": [{"mixer": "attention"}, {"mixer": "mlp"}]},
             "measure": {"seq_lens": [8, 16], "phases": ["forward"], "warmup": 0, "repeats": 100000,
                         "min_repeats": 1}}})");
  spec["base"]["measure"]["target_seconds"] = seconds;
  json sizes = json::array();
  for (int k = 0; k < points; ++k) sizes.push_back(8 * (k + 1));
  spec["grid"] = {{"model.d_model", sizes}};
  std::ofstream(path) << spec.dump(2);
}

std::vector<std::string> sweep_args(const TempDir& dir) {
  return {"sweep", dir.file("spec.json"), "--device", "cpu", "--db", dir.file("r.db")};
}

// The OOM killer, imitated by a SIGKILL as the first measurement of the first point starts, twice.
TEST(PointClaimTest, APointWhoseProcessDiesTwiceIsKilledAndTheSweepGoesOn) {
  TempDir dir("claims_oom");
  write_spec(dir.file("spec.json"), 0);
  const std::string die = "MIXLAB_FAULT_INJECTION=measuring:1";
  for (int run = 0; run < 2; ++run) {
    const std::string command = die + " " + MIXLAB_BINARY + " sweep " + dir.file("spec.json") + " --device cpu --db " +
                                dir.file("r.db") + " >/dev/null 2>&1";
    const int status = std::system(command.c_str());
    ASSERT_TRUE(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGKILL)) << run;
  }
  const auto third = mixlab::testing::run_process(MIXLAB_BINARY, sweep_args(dir), dir.file("third"));
  EXPECT_TRUE(third.exited_with(1)) << third.out << third.err;  // a killed point is not success
  EXPECT_NE(third.out.find("KILLED: its process died 2 times while running forward N=8"), std::string::npos)
      << third.out;
  EXPECT_NE(third.out.find("1 done, 0 already done, 0 failed, 1 killed"), std::string::npos) << third.out;
  {
    Store store(dir.file("r.db"), Store::Mode::read_only);
    EXPECT_EQ(text_of(store, "SELECT group_concat(status) FROM (SELECT status FROM points ORDER BY status)"),
              "done,killed");
  }
  const auto show = mixlab::testing::run_process(MIXLAB_BINARY, {"show", "--db", dir.file("r.db"), "--summary"},
                                                 dir.file("show"));
  EXPECT_NE(show.out.find("KILLED: its process died 2 times"), std::string::npos) << show.out;
  // --force runs it again.
  auto forced = sweep_args(dir);
  forced.push_back("--force");
  EXPECT_TRUE(mixlab::testing::run_process(MIXLAB_BINARY, forced, dir.file("forced")).exited_with(0));
}

TEST(PointClaimTest, UnshardedWorkersOnOneDatabaseRunEachPointOnce) {
  TempDir dir("claims_workers");
  const int points = 4;
  write_spec(dir.file("spec.json"), 0.25, points);
  const pid_t a = mixlab::testing::start_process(MIXLAB_BINARY, sweep_args(dir), dir.file("a"));
  const pid_t b = mixlab::testing::start_process(MIXLAB_BINARY, sweep_args(dir), dir.file("b"));
  const auto ra = mixlab::testing::wait_process(a, dir.file("a"));
  const auto rb = mixlab::testing::wait_process(b, dir.file("b"));
  EXPECT_TRUE(ra.exited_with(0)) << ra.out << ra.err;
  EXPECT_TRUE(rb.exited_with(0)) << rb.out << rb.err;
  auto runs = [](const std::string& out) {
    int n = 0;
    for (size_t at = out.find(": done in "); at != std::string::npos; at = out.find(": done in ", at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(runs(ra.out) + runs(rb.out), points) << ra.out << "\n---\n" << rb.out;
  Store store(dir.file("r.db"), Store::Mode::read_only);
  EXPECT_EQ(text_of(store, "SELECT COUNT(*) FROM points WHERE status = 'done' AND attempts = 1"), std::to_string(points));
}

TEST(PointClaimTest, InterruptEndsThePointInFlightCleanly) {
  TempDir dir("claims_interrupt");
  write_spec(dir.file("spec.json"), 1.0);
  const pid_t pid = mixlab::testing::start_process(MIXLAB_BINARY, sweep_args(dir), dir.file("sweep"));
  // Wait until the first point is measuring.
  bool running = false;
  for (int i = 0; i < 600 && !running; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    try {
      Store store(dir.file("r.db"), Store::Mode::read_only);
      running = text_of(store, "SELECT COUNT(*) FROM points WHERE status = 'running' AND claim_stage IS NOT NULL") == "1";
    } catch (const std::exception&) {
    }
  }
  ASSERT_TRUE(running);
  ::kill(pid, SIGINT);
  const auto result = mixlab::testing::wait_process(pid, dir.file("sweep"));
  EXPECT_TRUE(result.exited_with(128 + SIGINT)) << result.status << result.err;
  EXPECT_EQ(result.err, "mixlab: interrupted at point 1 of 2; rerun the same command to resume\n");
  {
    Store store(dir.file("r.db"), Store::Mode::read_only);
    // Both points are pending (the one in flight was given back), nothing half-written.
    EXPECT_EQ(text_of(store, "SELECT group_concat(status) FROM points"), "pending,pending");
    EXPECT_EQ(text_of(store, "SELECT COUNT(*) FROM measurements"), "0");
    EXPECT_EQ(text_of(store, "SELECT COUNT(*) FROM sweeps WHERE finished_at IS NULL"), "1");
  }
}
#endif

}  // namespace
}  // namespace mixlab
