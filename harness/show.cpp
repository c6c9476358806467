#include "harness/show.h"

#include "core/text.h"

#include "harness/config.h"
#include "harness/measure.h"
#include "reports/tables.h"
#include "reports/text.h"

#include <algorithm>
#include <functional>
#include <map>
#include <cmath>
#include <ostream>
#include <vector>

namespace mixlab {

namespace {

using reports::compact_number;
using reports::fixed_decimals;
using reports::printable_line;

// At most `at_most` items, "(none)" for none.
std::string listed(const std::vector<std::string>& items, size_t at_most = 12) {
  return items.empty() ? "(none)" : joined_at_most(items, at_most);
}

// header[0] names the row-name column; each row's first cell is its name.
void print_table(std::ostream& out, const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                 const std::vector<bool>& right_aligned) {
  reports::Table table;
  table.corner = header.front();
  table.columns.assign(header.begin() + 1, header.end());
  for (const auto& row : rows) {
    table.rows.push_back(row.front());
    std::vector<reports::TableCell> cells;
    for (auto cell = row.begin() + 1; cell != row.end(); ++cell) cells.push_back(reports::TableCell::words(*cell));
    table.cells.push_back(std::move(cells));
  }
  out << reports::render_text(table, right_aligned);
}

// "-" for a value the database does not hold (NULL reads as NaN).
std::string or_dash(double value, const std::function<std::string(double)>& format) {
  return std::isnan(value) ? "-" : format(value);
}

std::string short_commit(std::string commit) {
  if (commit.size() > 12 && commit != "unknown")
    commit = commit.substr(0, 12) + (commit.find("-dirty") != std::string::npos ? "-dirty" : "");
  return commit;
}

}  // namespace

ShowFilter resolve_show_filter(Store& store, const ShowFilter& filter) {
  ShowFilter resolved = filter;
  const std::string& db = store.path();
  if (!filter.sweep_name.empty()) {
    const auto sweeps = reports::sweep_names(store.handle());
    if (std::find(sweeps.begin(), sweeps.end(), filter.sweep_name) == sweeps.end())
      throw ConfigError(db, "--sweep", "no sweep '" + filter.sweep_name + "' in this database; sweeps: " + listed(sweeps));
  }
  if (!filter.phase.empty()) {
    const auto& phases = phase_names();
    if (std::find(phases.begin(), phases.end(), filter.phase) == phases.end())
      throw ConfigError(db, "--phase", "unknown phase '" + filter.phase + "'; valid: " + listed(phases));
  }
  if (!filter.point_id.empty()) {
    const auto ids = reports::point_ids_starting_with(store.handle(), filter.point_id);
    if (ids.empty())
      throw ConfigError(db, "--point", "no point id starts with '" + filter.point_id + "' (mixlab show --db " + db +
                                           " lists them)");
    if (ids.size() > 1)
      throw ConfigError(db, "--point", "'" + filter.point_id + "' is ambiguous: " + std::to_string(ids.size()) +
                                           " points start with it (" + listed(ids, 4) + "); give more characters");
    resolved.point_id = ids.front();
  }
  return resolved;
}

void print_sweeps(Store& store, std::ostream& out) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : reports::load_sweeps(store.handle()))
    rows.push_back({std::to_string(s.id), s.name, s.started_at.substr(0, 19),
                    s.finished_at.value_or("(unfinished)").substr(0, 19), s.device + "/" + s.dtype, s.torch_version,
                    short_commit(s.git_commit), s.host, s.shard.value_or("-"), s.device_name});
  out << "sweeps\n";
  print_table(out, {"id", "name", "started", "finished", "device", "torch", "commit", "host", "shard", "device name"},
              rows, {true, false, false, false, false, false, false, false, false, false});
}

void print_point_summary(Store& store, std::ostream& out, const ShowFilter& filter) {
  std::map<std::string, std::string> by_sweep;  // sweep -> "2 done, 1 failed"
  for (const auto& count : reports::point_status_counts(store.handle(), filter)) {
    auto& text = by_sweep[count.sweep_name];
    text += (text.empty() ? "" : ", ") + std::to_string(count.count) + " " + count.status;
  }
  out << "\npoints\n";
  for (const auto& [name, text] : by_sweep) out << "  " << printable_line(name) << ": " << text << "\n";
  const auto failed = reports::failed_points(store.handle(), filter);
  if (!failed.empty()) out << "\nfailed points\n";
  for (const auto& point : failed)
    out << "  " << printable_line(point.label) << " (" << point.point_id << ")"
        << (point.status == "killed" ? " KILLED" : "") << ": " << printable_line(point.error) << "\n";
  const auto unsuccessful = reports::failed_measurements(store.handle(), filter);
  if (!unsuccessful.empty()) out << "\nmeasurements that did not succeed\n";
  for (const auto& m : unsuccessful)
    out << "  " << printable_line(m.label) << " " << m.phase << ": " << m.count << " " << m.status << " from N=" << m.min_seq_len
        << " (" << printable_line(m.error) << ")\n";
}

void print_training(Store& store, std::ostream& out, const ShowFilter& filter) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : reports::last_training_steps(store.handle(), filter))
    rows.push_back({t.label, t.point_id.substr(0, 10), std::to_string(t.step), reports::significant_digits(t.tokens, 4),
                    reports::significant_digits(t.flops, 4), fixed_decimals(t.loss, 4), fixed_decimals(t.elapsed_s, 1),
                    std::to_string(t.rows)});
  if (rows.empty()) return;
  out << "\ntraining (last logged step)\n";
  print_table(out, {"label", "point", "step", "tokens", "FLOPs", "train loss", "elapsed s", "rows"}, rows, {});
}

void print_evaluations(Store& store, std::ostream& out, const ShowFilter& filter) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : reports::last_evaluations(store.handle(), filter))
    rows.push_back({e.label, e.point_id.substr(0, 10), std::to_string(e.step), e.task, e.metric,
                    e.seq_len < 0 ? "-" : std::to_string(e.seq_len), fixed_decimals(e.value, 4)});
  if (rows.empty()) return;
  out << "\nevaluations (last evaluated step)\n";
  print_table(out, {"label", "point", "step", "task", "metric", "N", "value"}, rows, {});
}

void print_measurements(Store& store, std::ostream& out, const ShowFilter& filter) {
  const double mib = 1024.0 * 1024.0;
  std::vector<std::vector<std::string>> rows;
  for (const auto& m : reports::measurement_rows(store.handle(), filter)) {
    // decode*: the mixer has no step(), so each token re-ran the prefix.
    const std::string phase = m.phase + (m.extra_json.find("decode_fallback") != std::string::npos ? "*" : "");
    rows.push_back(
        {m.label, phase, std::to_string(m.seq_len), std::to_string(m.batch), m.status,
         or_dash(m.median_ms, [](double v) { return fixed_decimals(v, v < 10 ? 3 : 1); }),
         or_dash(m.stddev_ms,
                 [&](double v) {
                   return std::isnan(m.median_ms) || m.median_ms == 0 ? std::string("-")
                                                                      : fixed_decimals(100.0 * v / m.median_ms, 1) + "%";
                 }),
         m.repeats ? std::to_string(*m.repeats) : "-", or_dash(m.tokens_per_s, compact_number),
         or_dash(m.flops, compact_number), or_dash(m.tflops_per_s, [](double v) { return fixed_decimals(v, 3); }),
         or_dash(m.peak_memory_bytes, [&](double v) { return fixed_decimals(v / mib, 1); }),
         or_dash(m.state_bytes, [&](double v) { return fixed_decimals(v / mib, 2); }), or_dash(m.parameters, compact_number)});
  }
  out << "\nmeasurements" << (filter.phase.empty() ? "" : " (" + filter.phase + ")")
      << "   (decode*: no step(), the prefix is re-run)\n";
  print_table(out,
              {"label", "phase", "N", "B", "status", "median ms", "sd", "reps", "tokens/s", "FLOPs", "TFLOP/s",
               "peak MiB", "state MiB", "params"},
              rows, {false, false, true, true, false, true, true, true, true, true, true, true, true, true});
}

}  // namespace mixlab
