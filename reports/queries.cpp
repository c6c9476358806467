// Loaders for reports/: SQL with placeholders, filter clauses appended as bound parameters.

#include "reports/queries.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <set>

namespace mixlab::reports {

namespace {

std::map<std::string, std::string> label_of(const std::vector<PointInfo>& points) {
  std::map<std::string, std::string> labels;
  for (const auto& point : points) labels[point.point_id] = point.label;
  return labels;
}

// Latency is proportional to the timed milliseconds, throughput and TFLOP/s inversely: each
// repeat t_i gives the metric value·t_i/median (latency) or value·median/t_i (rates), and the
// spread scales the same way (relative standard deviation sd/median).
void attach_timing_spread(MetricRow& row, const Metric& metric, double median_ms, double stddev_ms,
                          const std::string& extra_json) {
  const bool latency = metric.column == "median_ms";
  const bool rate = metric.column == "tokens_per_s" || metric.column == "tflops_per_s";
  if (!(latency || rate) || !(median_ms > 0) || !std::isfinite(row.value)) return;
  if (std::isfinite(stddev_ms)) row.spread = row.value * stddev_ms / median_ms;
  const nlohmann::json extra = nlohmann::json::parse(extra_json, nullptr, false);
  if (!extra.is_object() || !extra.contains("samples_ms") || !extra["samples_ms"].is_array()) return;
  for (const auto& sample : extra["samples_ms"])
    if (sample.is_number() && sample.get<double>() > 0)
      row.samples.push_back(latency ? row.value * sample.get<double>() / median_ms
                                    : row.value * median_ms / sample.get<double>());
}

}  // namespace

std::vector<PointInfo> load_points(Database& database, const Filter& filter) {
  std::vector<BoundValue> bound;
  const std::string where = filter.points_only().sql(bound, false);
  Statement statement(database,
                      "SELECT p.point_id, COALESCE(p.label, p.point_id), COALESCE(p.mixers, ''), "
                      "COALESCE(p.sweep_name, ''), COALESCE(p.status, ''), COALESCE(p.parameters, 0), COALESCE(p.error, '') "
                      "FROM points p WHERE 1 = 1" + where + " ORDER BY p.label, p.point_id");
  statement.bind_all(bound);
  std::vector<PointInfo> points;
  while (statement.step())
    points.push_back({statement.text(0), statement.text(1), statement.text(2), statement.text(3), statement.text(4),
                      statement.integer(5), statement.text(6)});
  // Two different configurations with the same label would share a colour and a line: tell them apart.
  std::map<std::string, int> uses;
  for (const auto& point : points) ++uses[point.label];
  for (auto& point : points)
    if (uses[point.label] > 1) point.label += " [" + point.point_id.substr(0, 6) + "]";
  std::sort(points.begin(), points.end(), [](const PointInfo& a, const PointInfo& b) { return a.label < b.label; });
  return points;
}

std::vector<MetricRow> load_metric(Database& database, const Metric& metric, const Filter& filter,
                                   const std::vector<PointInfo>& points) {
  const auto labels = label_of(points);
  std::vector<MetricRow> rows;
  std::vector<BoundValue> bound;
  if (metric.phase == "points") {
    // One value per configuration, from the points table (seq_len 0 = not applicable).
    for (const auto& point : points) rows.push_back({point.point_id, point.label, 0, "ok", static_cast<double>(point.parameters)});
    return rows;
  }
  // metric.column comes from the fixed list in metrics.cpp, never from the user.
  std::string sql = "SELECT m.point_id, m.seq_len, COALESCE(m.status, 'ok'), m." + metric.column + ", m.phase, " +
                    "m.median_ms, m.stddev_ms, COALESCE(m.extra_json, '{}'), COALESCE(m.device, '') " +
                    "FROM measurements m JOIN points p ON p.point_id = m.point_id WHERE 1 = 1";
  if (!metric.phase.empty()) {
    sql += " AND m.phase = ?";
    bound.push_back(metric.phase);
  }
  sql += filter.sql(bound, true) + " ORDER BY m.point_id, m.seq_len, m.phase DESC";
  Statement statement(database, sql);
  statement.bind_all(bound);
  // A phase-independent metric (state_bytes) may be stored on several phases: per (point,
  // seq_len) the first ok value wins; a size with no ok value keeps the failure it had.
  std::map<std::pair<std::string, int64_t>, MetricRow> merged;
  while (statement.step()) {
    const std::string point_id = statement.text(0);
    auto label = labels.find(point_id);
    if (label == labels.end()) continue;  // a measurement of a point filtered out
    MetricRow row{point_id, label->second, statement.integer(1), statement.text(2), statement.real(3)};
    if (row.status == "ok" && !std::isfinite(row.value)) continue;  // not measured in this phase
    row.device = statement.text(8);
    attach_timing_spread(row, metric, statement.real(5), statement.real(6), statement.text(7));
    auto key = std::make_pair(point_id, row.seq_len);
    auto found = merged.find(key);
    if (found == merged.end() || (found->second.status != "ok" && row.status == "ok")) merged[key] = row;
  }
  for (auto& [key, row] : merged) rows.push_back(std::move(row));
  return rows;
}

std::vector<TrainRow> load_train_log(Database& database, const Filter& filter, const std::vector<PointInfo>& points) {
  std::vector<TrainRow> rows;
  if (!database.has_table("train_log")) return rows;
  const auto labels = label_of(points);
  std::vector<BoundValue> bound;
  const std::string where = filter.points_only().sql(bound, false);
  Statement statement(database,
                      "SELECT t.point_id, t.step, COALESCE(t.tokens, 0), t.flops, t.loss, t.tokens_per_s "
                      "FROM train_log t JOIN points p ON p.point_id = t.point_id WHERE 1 = 1" + where +
                      " ORDER BY t.point_id, t.step");
  statement.bind_all(bound);
  while (statement.step()) {
    auto label = labels.find(statement.text(0));
    if (label == labels.end()) continue;
    rows.push_back({statement.text(0), label->second, statement.integer(1), statement.integer(2), statement.real(3),
                    statement.real(4), statement.real(5)});
  }
  return rows;
}

std::vector<EvaluationRow> load_evaluations(Database& database, const Filter& filter,
                                            const std::vector<PointInfo>& points) {
  std::vector<EvaluationRow> rows;
  if (!database.has_table("evaluations")) return rows;
  const auto labels = label_of(points);
  std::vector<BoundValue> bound;
  const std::string where = filter.points_only().sql(bound, false);
  Statement statement(database,
                      "SELECT e.point_id, e.step, e.task, e.metric, e.value, COALESCE(e.seq_len, -1), "
                      "COALESCE(e.bucket, -1) FROM evaluations e JOIN points p ON p.point_id = e.point_id "
                      "WHERE 1 = 1" + where + " ORDER BY e.point_id, e.task, e.metric, e.step, e.seq_len, e.bucket");
  statement.bind_all(bound);
  while (statement.step()) {
    auto label = labels.find(statement.text(0));
    if (label == labels.end()) continue;
    rows.push_back({statement.text(0), label->second, statement.integer(1), statement.text(2), statement.text(3),
                    statement.real(4), statement.integer(5), statement.integer(6)});
  }
  return rows;
}

bool is_failure_status(const std::string& status) { return status != "ok"; }

std::string status_caption(const std::string& status) {
  if (status == "oom") return "OOM";
  if (status == "time_budget") return "time budget";
  if (status == "nonfinite") return "non-finite";
  if (status == "unsupported") return "unsupported";
  return "error";
}

std::vector<Series> series_by_label(const std::vector<MetricRow>& rows, double scale) {
  std::map<std::string, Series> by_label;
  std::map<std::string, std::vector<const MetricRow*>> measured;
  for (const auto& row : rows) {
    Series& series = by_label[row.label];
    series.label = row.label;
    series.point_id = row.point_id;
    if (row.status == "ok") {
      if (std::isfinite(row.value)) measured[row.label].push_back(&row);
    } else {
      series.failed.emplace_back(static_cast<double>(row.seq_len), row.status);
    }
  }
  std::vector<Series> result;
  for (auto& [label, series] : by_label) {
    auto& list = measured[label];
    std::stable_sort(list.begin(), list.end(), [](const MetricRow* a, const MetricRow* b) { return a->seq_len < b->seq_len; });
    for (const MetricRow* row : list) {
      series.measured.emplace_back(static_cast<double>(row->seq_len), row->value * scale);
      series.spread.push_back(row->spread * scale);
      std::vector<double> samples;
      for (double sample : row->samples) samples.push_back(sample * scale);
      series.samples.push_back(std::move(samples));
    }
    std::sort(series.failed.begin(), series.failed.end());
    result.push_back(std::move(series));
  }
  return result;
}

}  // namespace mixlab::reports
