// Every query of reports/ and of `mixlab show`: SQL with placeholders, filter clauses appended as
// bound parameters.

#include "reports/queries.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <set>
#include <tuple>

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
  const std::string value = metric.column.rfind("extra.", 0) == 0
                                ? "json_extract(m.extra_json, '$." + metric.column.substr(6) + "')"
                                : "m." + metric.column;
  std::string sql = "SELECT m.point_id, m.seq_len, COALESCE(m.status, 'ok'), " + value + ", m.phase, " +
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

// ------------------------------------------------------------------ provenance

namespace {
std::optional<std::string> optional_text(const Statement& statement, int column) {
  return statement.is_null(column) ? std::nullopt : std::optional<std::string>(statement.text(column));
}
}  // namespace

std::vector<SweepInfo> load_sweeps(sqlite::Database& database) {
  std::vector<SweepInfo> sweeps;
  if (!database.has_table("sweeps")) return sweeps;
  Statement q(database,
              "SELECT sweep_id, name, started_at, finished_at, shard, device, device_name, dtype, torch_version, "
              "git_commit, host, COALESCE(device_name, device, '') FROM sweeps ORDER BY sweep_id");
  while (q.step())
    sweeps.push_back({q.integer(0), q.text(1), q.text(2), optional_text(q, 3), optional_text(q, 4), q.text(5), q.text(6),
                      q.text(7), q.text(8), q.text(9), q.text(10), q.text(11)});
  return sweeps;
}

// ------------------------------------------------------------------ fits and crossovers

namespace {

std::string now_utc() {
  const std::time_t now = std::time(nullptr);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return buffer;
}

}  // namespace

void store_fits(Database& database, const std::vector<FitRecord>& fits, const std::vector<CrossoverRecord>& crossovers) {
  database.execute(
      "CREATE TABLE IF NOT EXISTS fits (db_label TEXT, point_id TEXT, phase TEXT, metric TEXT, exponent REAL, r2 REAL, "
      "n_min INTEGER, n_max INTEGER, created_at TEXT)");
  database.execute(
      "CREATE TABLE IF NOT EXISTS crossovers (phase TEXT, metric TEXT, faster_label TEXT, slower_label TEXT, "
      "seq_len REAL, created_at TEXT)");
  const std::string created = now_utc();
  database.transaction([&] {
    for (const auto& record : fits) {
      Statement remove(database, "DELETE FROM fits WHERE point_id = ? AND phase = ? AND metric = ?");
      remove.bind_all({record.point_id, record.metric->phase, record.metric->column});
      remove.step();
      Statement insert(database, "INSERT INTO fits (db_label, point_id, phase, metric, exponent, r2, n_min, n_max, "
                                 "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
      insert.bind_all({record.label, record.point_id, record.metric->phase, record.metric->column, record.fit.exponent,
                       record.fit.r2, static_cast<int64_t>(record.fit.n_min), static_cast<int64_t>(record.fit.n_max), created});
      insert.step();
    }
    // Replace every crossover of the pairs and metrics computed now (a crossing may have gone).
    std::set<std::tuple<std::string, std::string, std::string, std::string>> cleared;
    for (const auto& record : crossovers) {
      auto a = record.crossover.better_label, b = record.crossover.worse_label;
      if (b < a) std::swap(a, b);
      if (!cleared.insert({record.metric->phase, record.metric->column, a, b}).second) continue;
      Statement remove(database,
                       "DELETE FROM crossovers WHERE phase = ? AND metric = ? AND "
                       "((faster_label = ? AND slower_label = ?) OR (faster_label = ? AND slower_label = ?))");
      remove.bind_all({record.metric->phase, record.metric->column, a, b, b, a});
      remove.step();
    }
    for (const auto& record : crossovers) {
      Statement insert(database, "INSERT INTO crossovers (phase, metric, faster_label, slower_label, seq_len, created_at) "
                                 "VALUES (?, ?, ?, ?, ?, ?)");
      insert.bind_all({record.metric->phase, record.metric->column, record.crossover.better_label,
                       record.crossover.worse_label, record.crossover.seq_len, created});
      insert.step();
    }
  });
}

// ------------------------------------------------------------------ `mixlab show`

namespace {

std::vector<std::string> first_column(Statement& statement) {
  std::vector<std::string> values;
  while (statement.step()) values.push_back(statement.text(0));
  return values;
}

// Points of the sweep named by ?1 (the table alias p is the points table); "1" without a sweep.
std::string in_sweep(const ShowFilter& filter) {
  return filter.sweep_name.empty() ? "1" : "p.point_id IN (SELECT point_id FROM sweep_points WHERE sweep_name = ?1)";
}

// " AND p.sweep_name = ? AND p.point_id = ?" with the values to bind, for a query aliasing points as p.
std::string point_clauses(const ShowFilter& filter, std::vector<BoundValue>& bound) {
  std::string sql;
  if (!filter.sweep_name.empty()) sql += " AND p.sweep_name = ?", bound.push_back(filter.sweep_name);
  if (!filter.point_id.empty()) sql += " AND p.point_id = ?", bound.push_back(filter.point_id);
  return sql;
}

}  // namespace

std::vector<std::string> sweep_names(sqlite::Database& database) {
  Statement q(database, "SELECT name FROM sweeps UNION SELECT sweep_name FROM points ORDER BY 1");
  return first_column(q);
}

std::vector<std::string> point_ids_starting_with(sqlite::Database& database, const std::string& prefix) {
  Statement q(database, "SELECT point_id FROM points WHERE substr(point_id, 1, length(?1)) = ?1 ORDER BY 1");
  q.bind(1, prefix);
  return first_column(q);
}

// A point belongs to every sweep that lists it (table sweep_points), not only the one that ran it.
std::vector<StatusCount> point_status_counts(sqlite::Database& database, const ShowFilter& filter) {
  Statement q(database, "SELECT sp.sweep_name, p.status, COUNT(*) FROM sweep_points sp JOIN points p USING (point_id) "
                        "WHERE " + std::string(filter.sweep_name.empty() ? "1" : "sp.sweep_name = ?1") +
                            " GROUP BY sp.sweep_name, p.status ORDER BY sp.sweep_name, p.status");
  if (!filter.sweep_name.empty()) q.bind(1, filter.sweep_name);
  std::vector<StatusCount> counts;
  while (q.step()) counts.push_back({q.text(0), q.text(1), q.integer(2)});
  return counts;
}

std::vector<FailedPoint> failed_points(sqlite::Database& database, const ShowFilter& filter) {
  Statement q(database, "SELECT point_id, label, error, status FROM points p WHERE status IN ('failed', 'killed') AND (" +
                            in_sweep(filter) + ") ORDER BY label");
  if (!filter.sweep_name.empty()) q.bind(1, filter.sweep_name);
  std::vector<FailedPoint> points;
  while (q.step()) points.push_back({q.text(0), q.text(1), q.text(2), q.text(3)});
  return points;
}

std::vector<FailedMeasurements> failed_measurements(sqlite::Database& database, const ShowFilter& filter) {
  Statement q(database,
              "SELECT p.label, m.phase, m.status, COUNT(*), MIN(m.seq_len), MIN(m.error) FROM measurements m "
              "JOIN points p USING (point_id) WHERE m.status != 'ok' AND (" + in_sweep(filter) +
                  ") GROUP BY p.label, m.phase, m.status ORDER BY p.label, m.phase");
  if (!filter.sweep_name.empty()) q.bind(1, filter.sweep_name);
  std::vector<FailedMeasurements> rows;
  while (q.step()) rows.push_back({q.text(0), q.text(1), q.text(2), q.integer(3), q.integer(4), q.text(5)});
  return rows;
}

std::vector<MeasurementRow> measurement_rows(sqlite::Database& database, const ShowFilter& filter) {
  std::string sql =
      "SELECT p.label, m.phase, m.status, m.extra_json, m.seq_len, m.batch, m.repeats, m.median_ms, m.stddev_ms, "
      "m.tokens_per_s, m.flops, m.tflops_per_s, m.peak_memory_bytes, m.state_bytes, p.parameters "
      "FROM measurements m JOIN points p USING (point_id) WHERE 1";
  if (!filter.sweep_name.empty()) sql += " AND " + in_sweep(filter);
  if (!filter.phase.empty()) sql += " AND m.phase = ?2";
  if (!filter.point_id.empty()) sql += " AND m.point_id = ?3";
  sql += " ORDER BY m.phase, p.label, m.point_id, m.seq_len";
  Statement q(database, sql);
  if (!filter.sweep_name.empty()) q.bind(1, filter.sweep_name);
  if (!filter.phase.empty()) q.bind(2, filter.phase);
  if (!filter.point_id.empty()) q.bind(3, filter.point_id);
  std::vector<MeasurementRow> rows;
  while (q.step())
    rows.push_back({q.text(0), q.text(1), q.text(2), q.text(3), q.integer(4), q.integer(5),
                    q.is_null(6) ? std::nullopt : std::optional<int64_t>(q.integer(6)), q.real(7), q.real(8), q.real(9),
                    q.real(10), q.real(11), q.real(12), q.real(13), q.real(14)});
  return rows;
}

std::vector<LastTrainingStep> last_training_steps(sqlite::Database& database, const ShowFilter& filter) {
  std::vector<BoundValue> bound;
  Statement q(database,
              "SELECT p.label, p.point_id, t.step, t.tokens, t.flops, t.loss, t.elapsed_s, "
              "(SELECT COUNT(*) FROM train_log c WHERE c.point_id = p.point_id) "
              "FROM points p JOIN train_log t ON t.point_id = p.point_id "
              "AND t.step = (SELECT MAX(step) FROM train_log WHERE point_id = p.point_id) WHERE 1" +
                  point_clauses(filter, bound) + " ORDER BY p.label, p.point_id");
  q.bind_all(bound);
  std::vector<LastTrainingStep> rows;
  while (q.step())
    rows.push_back({q.text(0), q.text(1), q.integer(2), q.integer(7), q.real(3, 0.0), q.real(4, 0.0), q.real(5, 0.0),
                    q.real(6, 0.0)});
  return rows;
}

std::vector<LastEvaluation> last_evaluations(sqlite::Database& database, const ShowFilter& filter) {
  std::vector<BoundValue> bound;
  Statement q(database,
              "SELECT p.label, p.point_id, e.step, e.task, e.metric, e.seq_len, e.value "
              "FROM points p JOIN evaluations e ON e.point_id = p.point_id AND e.bucket = -1 "
              "AND e.step = (SELECT MAX(step) FROM evaluations WHERE point_id = p.point_id) WHERE 1" +
                  point_clauses(filter, bound) + " ORDER BY e.task, e.metric, p.label, e.seq_len");
  q.bind_all(bound);
  std::vector<LastEvaluation> rows;
  while (q.step())
    rows.push_back({q.text(0), q.text(1), q.text(3), q.text(4), q.integer(2), q.integer(5), q.real(6, 0.0)});
  return rows;
}

// ------------------------------------------------------------------ series

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
