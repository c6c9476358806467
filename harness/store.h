#pragma once
// The results database (docs/results-schema.md): one SQLite file, created on first use, in WAL
// mode with a busy timeout so that several shard processes can write one file; every point's rows
// are written in one transaction (BEGIN IMMEDIATE), so a killed process loses at most the point
// in flight and never leaves a half-written point behind.  This is the only writer of the
// sweeps, points, measurements, train_log and evaluations tables.

#include "harness/measure.h"
#include "harness/training_records.h"
#include "sqlite/database.h"
#include "sqlite/statement.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mixlab {

// The store's statements are those of the one SQLite layer (sqlite/statement.h).
using sqlite::Statement;

constexpr int kSchemaVersion = 1;

// A claim held by a process on another host is live while its heartbeat is younger than this;
// the heartbeat is refreshed every kHeartbeatSeconds while the point runs.
constexpr double kHeartbeatSeconds = 10;
constexpr double kClaimStaleSeconds = 90;
// Default number of times a point's process may die before the point is recorded `killed`.
constexpr int64_t kDefaultMaxAttempts = 2;

// What the store refuses (another schema version, a missing file to merge).  A failure of SQLite
// itself is an sqlite::Error, of which StoreError is a kind.
class StoreError : public sqlite::Error {
 public:
  using sqlite::Error::Error;
};

// A file that is not a mixlab results database (opened read-only, or given to merge).
class NotMixlabDatabase : public StoreError {
 public:
  using StoreError::StoreError;
};

// Provenance of one invocation (a row of `sweeps`, repeated on every measurement row).
struct SweepRecord {
  std::string name, description, spec_path, spec_json;
  std::string git_commit, host, device, device_name, torch_version, dtype;
  std::optional<std::string> shard;  // "i/n"
};

struct PointRecord {
  std::string point_id, sweep_name, label, mixers, config_json;
  int64_t parameters = 0, embedding_parameters = 0;
};

// How a claim on a point turned out (Store::claim_point).
struct PointClaim {
  enum class Outcome {
    claimed,  // this process runs the point now
    done,     // finished already (and not forced)
    busy,     // another live process holds the claim
    killed,   // its process died max_attempts times; recorded as `killed` and skipped
  };
  Outcome outcome = Outcome::claimed;
  int64_t attempt = 1;  // this claim's attempt number (claimed)
  std::string detail;   // busy: who holds it; killed: the recorded error; claimed: the previous death, if any
  std::optional<std::string> previous_status;  // the status before the claim (nullopt: a new point)
};

class Store {
 public:
  enum class Mode {
    read_write,  // create the file and the schema if missing, migrate, WAL
    read_only,   // never write: the file must exist and be a mixlab database
  };
  // Opens (creating if needed) the database; ":memory:" for a throw-away one.
  explicit Store(const std::string& path, Mode mode = Mode::read_write);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const { return path_; }
  // The connection, for statements of one's own (sqlite/statement.h).
  sqlite::Database& handle() { return *db_; }

  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT (ROLLBACK on an exception), retried while the
  // database is locked by another writer.
  void transaction(const std::function<void()>& body);
  void execute(const std::string& sql);

  int64_t begin_sweep(const SweepRecord& record);
  void finish_sweep(int64_t sweep_id);

  // "done", "running", "failed", "pending", or nullopt when the point is not in the database.
  std::optional<std::string> point_status(const std::string& point_id);
  int64_t measurement_count(const std::string& point_id);

  // Marks the point running (inserting or updating its row) in its own transaction.
  void start_point(const PointRecord& point, int64_t sweep_id);

  // Sweep membership (table sweep_points): every point of `points` belongs to sweep `name`, in
  // this order; a point new to the database gets a `pending` row.  One transaction.
  void register_sweep_points(const std::string& name, const std::vector<PointRecord>& points);

  // Claims (harness/point_claim.cpp).  Atomically (BEGIN IMMEDIATE): a point that is done is
  // left alone unless `force`; one `running` under a live claim (this host: its pid exists;
  // another host: a heartbeat younger than kClaimStaleSeconds) is busy; one `running` whose
  // process died is claimed again, or recorded `killed` once it has died `max_attempts` times.
  PointClaim claim_point(const PointRecord& point, int64_t sweep_id, bool force, int64_t max_attempts);
  // What the claimed point is doing now ("forward_backward N=4096"), written at once.
  void set_claim_stage(const std::string& point_id, const std::string& stage);
  // Refreshes this process's heartbeat on the point (a no-op when another process holds it).
  void heartbeat(const std::string& point_id);
  // Gives up the claim without a verdict (Ctrl-C): the point is `pending` again.
  void release_point(const std::string& point_id);
  // The (phase, N) a point cut midway already has (every status but time_budget, which a
  // resumed point measures again).
  StoredMeasurements stored_measurements(const std::string& point_id);
  // Removes the point's measurements (a point measured afresh: --force, or after it failed).
  void clear_measurements(const std::string& point_id);
  // Stores one measurement as soon as it is taken, replacing the point's row of that (phase, N).
  void store_measurement(const std::string& point_id, const SweepRecord& provenance, const Measurement& row);
  // Replaces the point's measurements with `rows` (with `keep_stored`: adds them to the ones
  // stored_measurements() names) and sets its parameter counts; when `finished` the point is marked
  // done in the same transaction.
  void record_measurements(const PointRecord& point, int64_t sweep_id, const SweepRecord& provenance,
                           const std::vector<Measurement>& rows, bool finished,
                           const std::function<void()>& before_commit = {}, bool keep_stored = false);
  void finish_point(const std::string& point_id);
  void fail_point(const std::string& point_id, const std::string& error);

  // The training phase's curves and evaluations for one point.
  std::unique_ptr<TrainingRecords> training_records(const std::string& point_id);

  // Copy every sweep, point and row of another mixlab database into this one without duplicates:
  // a point already here is replaced only by a better one (done over not done, then the later
  // finish).  Idempotent.  Returns the number of points taken.
  int64_t merge_from(const std::string& other_path);

 private:
  void create_schema();
  void add_missing_columns();
  void add_hyperparameter_columns();  // points.d_model, ... (docs/results-schema.md); idempotent
  void migrate_schema();
  void check_mixlab_database();
  std::string path_;
  Mode mode_ = Mode::read_write;
  std::unique_ptr<sqlite::Database> db_;
};

}  // namespace mixlab
