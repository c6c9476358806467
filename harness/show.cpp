#include "harness/show.h"

#include "harness/config.h"
#include "harness/measure.h"

#include <algorithm>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <vector>

namespace mixlab {

namespace {

std::string joined(const std::vector<std::string>& items, size_t at_most = 12) {
  std::string text;
  for (size_t i = 0; i < items.size() && i < at_most; ++i) text += (i ? ", " : "") + items[i];
  if (items.size() > at_most) text += ", … (" + std::to_string(items.size()) + " in all)";
  return text.empty() ? "(none)" : text;
}

std::vector<std::string> column(Store& store, const std::string& sql, const std::string& bound = "") {
  Statement q(store.handle(), sql);
  if (!bound.empty()) q.bind(1, bound);
  std::vector<std::string> values;
  while (q.step()) values.push_back(q.text(0));
  return values;
}

// " AND p.sweep_name = ? AND p.point_id = ?" with the values to bind, for a query aliasing points as p.
std::string point_clauses(const ShowFilter& filter, std::vector<std::string>& bound) {
  std::string sql;
  if (!filter.sweep_name.empty()) sql += " AND p.sweep_name = ?", bound.push_back(filter.sweep_name);
  if (!filter.point_id.empty()) sql += " AND p.point_id = ?", bound.push_back(filter.point_id);
  return sql;
}

void bind_strings(Statement& statement, const std::vector<std::string>& values) {
  for (size_t i = 0; i < values.size(); ++i) statement.bind(static_cast<int>(i + 1), values[i]);
}

std::string fixed(double value, int precision) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(precision) << value;
  return s.str();
}

std::string general(double value) {
  std::ostringstream s;
  s << std::setprecision(4) << value;
  return s.str();
}

// Characters on screen: UTF-8 continuation bytes (10xxxxxx) take no column ("·" in labels).
size_t columns(const std::string& text) {
  return static_cast<size_t>(std::count_if(text.begin(), text.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

void print_rows(std::ostream& out, const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) width[c] = columns(header[c]);
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], columns(row[c]));
  auto line = [&](const std::vector<std::string>& row) {
    for (size_t c = 0; c < row.size(); ++c)
      out << (c ? "  " : "") << row[c] << (c + 1 < row.size() ? std::string(width[c] - columns(row[c]), ' ') : "");
    out << "\n";
  };
  line(header);
  for (const auto& row : rows) line(row);
}

}  // namespace

ShowFilter resolve_show_filter(Store& store, const ShowFilter& filter) {
  ShowFilter resolved = filter;
  const std::string& db = store.path();
  if (!filter.sweep_name.empty()) {
    const auto sweeps = column(store, "SELECT name FROM sweeps UNION SELECT sweep_name FROM points ORDER BY 1");
    if (std::find(sweeps.begin(), sweeps.end(), filter.sweep_name) == sweeps.end())
      throw ConfigError(db, "--sweep", "no sweep '" + filter.sweep_name + "' in this database; sweeps: " + joined(sweeps));
  }
  if (!filter.phase.empty()) {
    const auto& phases = phase_names();
    if (std::find(phases.begin(), phases.end(), filter.phase) == phases.end())
      throw ConfigError(db, "--phase", "unknown phase '" + filter.phase + "'; valid: " + joined(phases));
  }
  if (!filter.point_id.empty()) {
    const auto ids = column(store, "SELECT point_id FROM points WHERE substr(point_id, 1, length(?1)) = ?1 ORDER BY 1",
                            filter.point_id);
    if (ids.empty())
      throw ConfigError(db, "--point", "no point id starts with '" + filter.point_id + "' (mixlab show --db " + db +
                                           " lists them)");
    if (ids.size() > 1)
      throw ConfigError(db, "--point", "'" + filter.point_id + "' is ambiguous: " + std::to_string(ids.size()) +
                                           " points start with it (" + joined(ids, 4) + "); give more characters");
    resolved.point_id = ids.front();
  }
  return resolved;
}

void print_training(Store& store, std::ostream& out, const ShowFilter& filter) {
  std::vector<std::string> bound;
  const std::string sql =
      "SELECT p.label, p.point_id, t.step, t.tokens, t.flops, t.loss, t.elapsed_s, "
      "(SELECT COUNT(*) FROM train_log c WHERE c.point_id = p.point_id) "
      "FROM points p JOIN train_log t ON t.point_id = p.point_id "
      "AND t.step = (SELECT MAX(step) FROM train_log WHERE point_id = p.point_id) WHERE 1" +
      point_clauses(filter, bound) + " ORDER BY p.label, p.point_id";
  Statement q(store.handle(), sql);
  bind_strings(q, bound);
  std::vector<std::vector<std::string>> rows;
  while (q.step())
    rows.push_back({q.text(0), q.text(1).substr(0, 10), std::to_string(q.integer(2)), general(q.real(3)),
                    general(q.real(4)), fixed(q.real(5), 4), fixed(q.real(6), 1), std::to_string(q.integer(7))});
  if (rows.empty()) return;
  out << "\ntraining (last logged step)\n";
  print_rows(out, {"label", "point", "step", "tokens", "FLOPs", "train loss", "elapsed s", "rows"}, rows);
}

void print_evaluations(Store& store, std::ostream& out, const ShowFilter& filter) {
  std::vector<std::string> bound;
  const std::string sql =
      "SELECT p.label, p.point_id, e.step, e.task, e.metric, e.seq_len, e.value "
      "FROM points p JOIN evaluations e ON e.point_id = p.point_id AND e.bucket = -1 "
      "AND e.step = (SELECT MAX(step) FROM evaluations WHERE point_id = p.point_id) WHERE 1" +
      point_clauses(filter, bound) + " ORDER BY e.task, e.metric, p.label, e.seq_len";
  Statement q(store.handle(), sql);
  bind_strings(q, bound);
  std::vector<std::vector<std::string>> rows;
  while (q.step())
    rows.push_back({q.text(0), q.text(1).substr(0, 10), std::to_string(q.integer(2)), q.text(3), q.text(4),
                    q.integer(5) < 0 ? "-" : std::to_string(q.integer(5)), fixed(q.real(6), 4)});
  if (rows.empty()) return;
  out << "\nevaluations (last evaluated step)\n";
  print_rows(out, {"label", "point", "step", "task", "metric", "N", "value"}, rows);
}

}  // namespace mixlab
