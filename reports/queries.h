#pragma once
// Every query a report's sections (reports/sections/) and `mixlab show` run against the results
// database, in one place: through the filter, with bound parameters only.

#include "reports/database.h"
#include "reports/filter.h"
#include "reports/fit_records.h"
#include "reports/metrics.h"

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mixlab::reports {

// Points passing the filter's point clauses, with labels made unique, sorted by label.
std::vector<PointInfo> load_points(Database& database, const Filter& filter);

// One row per (point, seq_len) for `metric`; non-`ok` measurements keep their status.
// `points` gives the unique labels (from load_points).
std::vector<MetricRow> load_metric(Database& database, const Metric& metric, const Filter& filter,
                                   const std::vector<PointInfo>& points);

std::vector<TrainRow> load_train_log(Database& database, const Filter& filter, const std::vector<PointInfo>& points);
std::vector<EvaluationRow> load_evaluations(Database& database, const Filter& filter,
                                            const std::vector<PointInfo>& points);

// One row of `sweeps`: an invocation's provenance.  NULL text reads as "".
struct SweepInfo {
  int64_t id = 0;
  std::string name, started_at;
  std::optional<std::string> finished_at, shard;  // nullopt: unfinished / not sharded
  std::string device, device_name, dtype, torch_version, git_commit, host;
  std::string device_label;  // the device name where known, else the device kind
};
// In the order they ran; none when the database has no `sweeps` table.
std::vector<SweepInfo> load_sweeps(sqlite::Database& database);

// Creates `fits` / `crossovers` when missing and replaces the rows for the same keys (the same
// configuration / pair, phase and metric), in one transaction.
void store_fits(Database& database, const std::vector<FitRecord>& fits, const std::vector<CrossoverRecord>& crossovers);

// A metric's rows for one configuration: measured (seq_len, value·scale) pairs and the failed
// sizes with their status.
struct Series {
  std::string label;
  std::string point_id;
  std::vector<std::pair<double, double>> measured;       // sorted by seq_len
  std::vector<double> spread;                            // per measured point, ·scale (NaN: none)
  std::vector<std::vector<double>> samples;              // per measured point, the repeats ·scale
  std::vector<std::pair<double, std::string>> failed;    // (seq_len, status)
};
std::vector<Series> series_by_label(const std::vector<MetricRow>& rows, double scale);

// ------------------------------------------------------------------ `mixlab show`
// Queries of `mixlab show` (harness/show.h).  A NULL number reads as NaN unless said otherwise.

// What `show` lists: empty fields select everything.
struct ShowFilter {
  std::string sweep_name;  // points listed by this sweep (table sweep_points)
  std::string phase;
  std::string point_id;    // the whole id
};

// Every sweep name, from `sweeps` and from `points`, sorted.
std::vector<std::string> sweep_names(sqlite::Database& database);
// The ids of the points whose id starts with `prefix`, sorted.
std::vector<std::string> point_ids_starting_with(sqlite::Database& database, const std::string& prefix);

// Points per (sweep, status) of the sweeps selected by filter.sweep_name, sorted.
struct StatusCount {
  std::string sweep_name, status;
  int64_t count = 0;
};
std::vector<StatusCount> point_status_counts(sqlite::Database& database, const ShowFilter& filter);

// Failed and killed points of the selected sweep, by label.
struct FailedPoint {
  std::string point_id, label, error, status;
};
std::vector<FailedPoint> failed_points(sqlite::Database& database, const ShowFilter& filter);

// Measurements that did not succeed, per (label, phase, status): how many, from which length,
// and the first error (alphabetically).
struct FailedMeasurements {
  std::string label, phase, status;
  int64_t count = 0, min_seq_len = 0;
  std::string error;
};
std::vector<FailedMeasurements> failed_measurements(sqlite::Database& database, const ShowFilter& filter);

// One row of `measurements` with its point's label and parameter count, ordered by phase,
// label, point and length.
struct MeasurementRow {
  std::string label, phase, status, extra_json;
  int64_t seq_len = 0, batch = 0;
  std::optional<int64_t> repeats;
  double median_ms, stddev_ms, tokens_per_s, flops, tflops_per_s, peak_memory_bytes, state_bytes, parameters;
};
std::vector<MeasurementRow> measurement_rows(sqlite::Database& database, const ShowFilter& filter);

// Per trained point (sweep and point filters), its last logged training step; NULL numbers read as 0.
struct LastTrainingStep {
  std::string label, point_id;
  int64_t step = 0, rows = 0;  // rows: how many steps were logged
  double tokens = 0, flops = 0, loss = 0, elapsed_s = 0;
};
std::vector<LastTrainingStep> last_training_steps(sqlite::Database& database, const ShowFilter& filter);

// Per evaluated point, the values of its last evaluated step (position buckets left out),
// ordered by task, metric, label and length; seq_len -1: not applicable.  NULL values read as 0.
struct LastEvaluation {
  std::string label, point_id, task, metric;
  int64_t step = 0, seq_len = -1;
  double value = 0;
};
std::vector<LastEvaluation> last_evaluations(sqlite::Database& database, const ShowFilter& filter);

bool is_failure_status(const std::string& status);  // anything but ok
std::string status_caption(const std::string& status);  // oom -> "OOM", time_budget -> "time budget", ...

}  // namespace mixlab::reports
