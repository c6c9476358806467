#include "harness/point_claim.h"

#include "harness/device.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <unistd.h>

namespace mixlab {

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

namespace {

bool process_exists(int64_t pid) {
  if (pid <= 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

struct Holder {
  int64_t pid = 0;
  std::string host, stage;
  double heartbeat_age_s = INFINITY;

  // Alive: a fresh heartbeat, and on this host a process with that pid (that is not this one:
  // this process is not running the point, or it would not be asking).
  bool alive(const std::string& this_host) const {
    if (pid == 0 || !(heartbeat_age_s < kClaimStaleSeconds)) return false;
    if (host != this_host) return true;
    return pid != ::getpid() && process_exists(pid);
  }
  std::string describe() const {
    return "pid " + std::to_string(pid) + " on " + (host.empty() ? std::string("an unknown host") : host);
  }
  std::string while_running() const { return stage.empty() ? "" : " while running " + stage; }
};

}  // namespace

PointClaim Store::claim_point(const PointRecord& p, int64_t sweep_id, bool force, int64_t max_attempts) {
  PointClaim claim;
  const std::string host = host_name();
  transaction([&] {
    Statement query(*db_, "SELECT status, IFNULL(attempts, 0), IFNULL(claim_pid, 0), IFNULL(claim_host, ''), "
                         "heartbeat_s, IFNULL(claim_stage, ''), IFNULL(error, '') FROM points WHERE point_id = ?");
    query.bind(1, p.point_id);
    int64_t attempt = 1;
    if (query.step()) {
      const std::string status = query.text(0);
      claim.previous_status = status;
      if (status == "done" && !force) {
        claim.outcome = PointClaim::Outcome::done;
        return;
      }
      if (status == "killed" && !force) {
        claim.outcome = PointClaim::Outcome::killed;
        claim.detail = query.text(6);
        return;
      }
      if (status == "running") {
        Holder holder{query.integer(2), query.text(3), query.text(5),
                      query.is_null(4) ? INFINITY : unix_seconds() - query.real(4)};
        if (holder.alive(host)) {
          claim.outcome = PointClaim::Outcome::busy;
          claim.detail = "running in " + holder.describe() + holder.while_running();
          return;
        }
        const int64_t deaths = std::max<int64_t>(query.integer(1), 1);
        if (deaths >= max_attempts && !force) {
          claim.outcome = PointClaim::Outcome::killed;
          claim.detail = "its process died " + std::to_string(deaths) + (deaths == 1 ? " time" : " times") +
                         holder.while_running() + " (last: " + holder.describe() +
                         "; out of memory or a signal?); skipped, --force runs it again";
          Statement killed(*db_, "UPDATE points SET status = 'killed', error = ?, finished_at = ?, claim_pid = NULL "
                                "WHERE point_id = ?");
          killed.bind(1, claim.detail).bind(2, utc_now_iso8601()).bind(3, p.point_id).run();
          return;
        }
        attempt = deaths + 1;
        claim.detail = "attempt " + std::to_string(attempt) + ": the previous one (" + holder.describe() + ") died" +
                       holder.while_running();
      }
    }
    Statement upsert(*db_,
                     "INSERT INTO points (point_id, sweep_name, label, mixers, config_json, status, error, sweep_id, "
                     "started_at, attempts, claim_pid, claim_host, heartbeat_s, claim_stage) "
                     "VALUES (?1,?2,?3,?4,?5,'running',NULL,?6,?7,?8,?9,?10,?11,NULL) "
                     "ON CONFLICT(point_id) DO UPDATE SET label=excluded.label, mixers=excluded.mixers, "
                     "config_json=excluded.config_json, status='running', error=NULL, sweep_id=excluded.sweep_id, "
                     "started_at=excluded.started_at, finished_at=NULL, attempts=excluded.attempts, "
                     "claim_pid=excluded.claim_pid, claim_host=excluded.claim_host, "
                     "heartbeat_s=excluded.heartbeat_s, claim_stage=NULL");
    upsert.bind(1, p.point_id).bind(2, p.sweep_name).bind(3, p.label).bind(4, p.mixers).bind(5, p.config_json)
        .bind(6, sweep_id).bind(7, utc_now_iso8601()).bind(8, attempt).bind(9, static_cast<int64_t>(::getpid()))
        .bind(10, host).bind(11, unix_seconds());
    upsert.run();
    claim.outcome = PointClaim::Outcome::claimed;
    claim.attempt = attempt;
  });
  return claim;
}

namespace {
// The statements below touch the row only while this process holds its claim.
const char* kOwnClaim = " WHERE point_id = ? AND status = 'running' AND claim_pid = ? AND claim_host = ?";
}  // namespace

void Store::set_claim_stage(const std::string& point_id, const std::string& stage) {
  Statement update(*db_, std::string("UPDATE points SET claim_stage = ?, heartbeat_s = ?") + kOwnClaim);
  update.bind(1, stage).bind(2, unix_seconds()).bind(3, point_id).bind(4, static_cast<int64_t>(::getpid()))
      .bind(5, host_name()).run();
}

void Store::heartbeat(const std::string& point_id) {
  Statement update(*db_, std::string("UPDATE points SET heartbeat_s = ?") + kOwnClaim);
  update.bind(1, unix_seconds()).bind(2, point_id).bind(3, static_cast<int64_t>(::getpid())).bind(4, host_name()).run();
}

void Store::release_point(const std::string& point_id) {
  Statement update(*db_, std::string("UPDATE points SET status = 'pending', claim_pid = NULL, claim_host = NULL, "
                                    "heartbeat_s = NULL, claim_stage = NULL, "
                                    "attempts = MAX(IFNULL(attempts, 1) - 1, 0), started_at = NULL") + kOwnClaim);
  update.bind(1, point_id).bind(2, static_cast<int64_t>(::getpid())).bind(3, host_name()).run();
}

// ------------------------------------------------------------------------------ heartbeat

ClaimHeartbeat::ClaimHeartbeat(const std::string& database_path, std::string point_id)
    : path_(database_path), point_id_(std::move(point_id)) {
  if (path_ == ":memory:") return;  // no other process can see an in-memory database
  thread_ = std::thread([this] { loop(); });
}

ClaimHeartbeat::~ClaimHeartbeat() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ClaimHeartbeat::loop() {
  std::unique_ptr<Store> store;
  std::unique_lock<std::mutex> lock(mutex_);
  while (!wake_.wait_for(lock, std::chrono::duration<double>(kHeartbeatSeconds), [this] { return stop_; })) {
    lock.unlock();  // the destructor must not wait for a busy database
    try {
      if (!store) store = std::make_unique<Store>(path_);
      store->heartbeat(point_id_);
    } catch (...) {
      store.reset();  // try again with a fresh connection next time
    }
    lock.lock();
  }
}

}  // namespace mixlab
