#pragma once
// A running point carries a claim: the pid and host of the process running it and a heartbeat
// (docs/results-schema.md, columns claim_pid, claim_host, heartbeat_s, claim_stage, attempts).
// Store::claim_point takes a claim atomically; ClaimHeartbeat keeps one fresh from a thread of
// its own while the point runs, so a claim whose process was killed (the OOM killer, a signal,
// a node failure) is told from one whose process is merely busy.

#include "harness/store.h"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace mixlab {

// Refreshes this process's heartbeat on one point every kHeartbeatSeconds, through its own
// database connection, until destroyed.  Errors (a locked or vanished database) are ignored: a
// missed heartbeat only makes the claim look older.
class ClaimHeartbeat {
 public:
  ClaimHeartbeat(const std::string& database_path, std::string point_id);
  ~ClaimHeartbeat();
  ClaimHeartbeat(const ClaimHeartbeat&) = delete;
  ClaimHeartbeat& operator=(const ClaimHeartbeat&) = delete;

 private:
  void loop();
  std::string path_, point_id_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

// Seconds since the Unix epoch (the heartbeat clock, comparable across hosts).
double unix_seconds();

}  // namespace mixlab
