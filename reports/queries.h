#pragma once
// Loading what a report needs from the results database, through the filter, with bound
// parameters only.

#include "reports/database.h"
#include "reports/filter.h"
#include "reports/metrics.h"

#include <map>
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

bool is_failure_status(const std::string& status);  // anything but ok
std::string status_caption(const std::string& status);  // oom -> "OOM", time_budget -> "time budget", ...

}  // namespace mixlab::reports
