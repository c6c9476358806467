#include "reports/recall_figure.h"

#include "reports/point_identity.h"


#include <sqlite3.h>

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <map>
#include <set>
#include <tuple>

namespace mixlab::reports {
namespace {

bool has_column(Database& database, const std::string& table, const std::string& column) {
  Statement info(database, "SELECT COUNT(*) FROM pragma_table_info('" + table + "') WHERE name = ?");
  info.bind(1, column);
  return info.step() && info.integer(0) > 0;
}

// Three significant digits, no padding: 0.98, 0.02, 0.000464, 1e-04 stays 0.0001.
std::string short_number(double x) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.3g", x);
  return buffer;
}

int64_t integer_at(const nlohmann::json& config, const std::string& dotted) {
  const auto value = dotted_value(config, dotted);
  return value.is_number_integer() ? value.get<int64_t>() : 0;
}

std::string axis_text(const nlohmann::json& value) {
  if (value.is_null()) return "";
  if (value.is_number()) return short_number(value.get<double>());
  return value.is_string() ? value.get<std::string>() : value.dump();
}

// (line, seq_len, d_model) order; the panels are (seq_len, pairs).
bool row_order(const RecallRow& a, const RecallRow& b) {
  return std::tie(a.line, a.seq_len, a.pairs, a.d_model) < std::tie(b.line, b.seq_len, b.pairs, b.d_model);
}

std::string setting(int64_t seq_len, int64_t pairs) {
  return std::to_string(seq_len) + " / " + std::to_string(pairs) + " pairs";
}

}  // namespace

std::string recall_line(const nlohmann::json& model) {
  std::string line;
  if (model.contains("name") && model["name"].is_string()) line = model["name"].get<std::string>();
  std::vector<std::string> mixers;
  const nlohmann::json pattern = model.value("pattern", nlohmann::json::array());
  for (const auto& sublayer : pattern) {
    const std::string mixer = sublayer.is_string() ? sublayer.get<std::string>() : sublayer.value("mixer", "");
    if (!mixer.empty() && std::find(mixers.begin(), mixers.end(), mixer) == mixers.end()) mixers.push_back(mixer);
  }
  if (line.empty())
    for (const auto& mixer : mixers) line += (line.empty() ? "" : "+") + mixer;
  static const std::vector<std::pair<std::string, std::string>> shown = {
      {"window", "W"}, {"segment_size", "S"}, {"top_k", "k"}, {"d_state", "n"}};
  for (const auto& [key, short_name] : shown)
    for (const auto& sublayer : pattern)
      if (sublayer.is_object() && sublayer.contains(key)) {
        line += " " + short_name + "=" + axis_text(sublayer[key]);
        break;
      }
  return line.empty() ? "model" : line;
}

std::vector<RecallRow> recall_rows(Database& database, const Filter& filter, const std::string& axis) {
  std::vector<BoundValue> bound;
  const std::string where = filter.points_only().sql(bound, false);
  // Every trained point's configuration, then its last evaluated accuracies.
  std::vector<AxisCandidate> candidates;
  {
    const std::string status = has_column(database, "points", "status") ? "COALESCE(p.status, '')" : "'done'";
    Statement points(database, "SELECT p.point_id, COALESCE(p.config_json, '{}'), " + status +
                                   " FROM points p WHERE 1 = 1" + where + " ORDER BY p.point_id");
    points.bind_all(bound);
    while (points.step()) {
      auto config = nlohmann::json::parse(points.text(1), nullptr, false);
      if (!config.is_object() || !config.contains("train") || !config["train"].is_object()) continue;
      const std::string source = dotted_value(config, "train.data.source").is_string()
                                     ? dotted_value(config, "train.data.source").get<std::string>()
                                     : "corpus";
      if (source == "corpus") continue;
      // How the steps ran (train.execution) and how densely the curve was kept (train.curve_every)
      // are not part of a point's identity (reports/point_identity.h): a database resumed under
      // other settings holds one configuration's points with and without them, and they are one
      // configuration.
      config["train"] = training_identity(config["train"]);
      candidates.push_back({points.text(0), std::move(config), std::nan(""), points.text(2) == "done"});
    }
  }
  std::map<std::string, double> state_of;
  if (database.has_table("evaluations")) {
    const std::string state = has_column(database, "evaluations", "state_bytes") ? "e.state_bytes" : "NULL";
    Statement accuracy(database,
                       "SELECT e.point_id, e.task, e.seq_len, e.value, " + state +
                           " FROM evaluations e WHERE e.metric = 'accuracy' AND COALESCE(e.bucket, -1) = -1 AND "
                           "e.step = (SELECT MAX(x.step) FROM evaluations x WHERE x.point_id = e.point_id)");
    std::map<std::string, AxisCandidate*> by_id;
    for (auto& candidate : candidates) by_id[candidate.point_id] = &candidate;
    while (accuracy.step()) {
      auto found = by_id.find(accuracy.text(0));
      if (found == by_id.end()) continue;
      AxisCandidate& candidate = *found->second;
      if (accuracy.text(1) != dotted_value(candidate.config, "train.data.source") ||
          accuracy.integer(2) != integer_at(candidate.config, "train.seq_len"))
        continue;  // another task or length of eval.tasks: not the training task's own figure
      candidate.value = accuracy.real(3);
      state_of[candidate.point_id] = accuracy.real(4);
    }
  }
  std::vector<RecallRow> rows;
  for (const auto& best : best_over_axis(candidates, axis)) {
    RecallRow row;
    row.line = recall_line(best.config.value("model", nlohmann::json::object()));
    row.seq_len = integer_at(best.config, "train.seq_len");
    row.pairs = integer_at(best.config, "train.data.num_kv_pairs");
    row.d_model = integer_at(best.config, "model.d_model");
    row.accuracy = best.value;
    const auto state = state_of.find(best.point_id);
    row.state_bytes = state == state_of.end() ? std::nan("") : state->second;
    row.best_axis_value = axis_text(best.axis_value);
    row.candidates = best.candidates;
    row.finished = best.finished;
    rows.push_back(row);
  }
  std::sort(rows.begin(), rows.end(), row_order);
  return rows;
}

std::vector<PlotSpec> recall_plots(const std::vector<RecallRow>& rows, const std::string& axis) {
  std::map<std::pair<int64_t, int64_t>, std::map<std::string, std::vector<const RecallRow*>>> panels;
  for (const auto& row : rows)
    if (std::isfinite(row.accuracy)) panels[{row.seq_len, row.pairs}][row.line].push_back(&row);
  std::vector<PlotSpec> plots;
  for (const auto& [panel, lines] : panels) {
    const auto [seq_len, pairs] = panel;
    const std::string where = "L" + std::to_string(seq_len) + "_K" + std::to_string(pairs);
    PlotSpec width;
    width.name = "recall_accuracy_vs_d_model_" + where;
    width.title = "MQAR, sequence length " + std::to_string(seq_len) + ", " + std::to_string(pairs) +
                  " pairs: accuracy vs d_model (best over " + axis + ")";
    width.x_label = "d_model";
    width.y_label = "accuracy";
    width.log_y = false;
    PlotSpec state = width;
    state.name = "recall_accuracy_vs_state_" + where;
    state.title = "MQAR, sequence length " + std::to_string(seq_len) + ", " + std::to_string(pairs) +
                  " pairs: accuracy vs inference state (best over " + axis + ")";
    state.x_label = "inference state of one sequence (bytes)";
    state.length_axis = false;
    for (const auto& [line, points] : lines) {
      PlotCurve by_width{line, {}, {}}, by_state{line, {}, {}};
      for (const RecallRow* row : points) {
        by_width.points.emplace_back(static_cast<double>(row->d_model), row->accuracy);
        if (std::isfinite(row->state_bytes) && row->state_bytes > 0)
          by_state.points.emplace_back(row->state_bytes, row->accuracy);
      }
      std::sort(by_width.points.begin(), by_width.points.end());
      std::sort(by_state.points.begin(), by_state.points.end());
      width.curves.push_back(by_width);
      if (!by_state.points.empty()) state.curves.push_back(by_state);
    }
    plots.push_back(width);
    if (!state.curves.empty()) plots.push_back(state);
  }
  return plots;
}

Table recall_table(const std::vector<RecallRow>& rows, const std::string& axis) {
  Table table;
  table.caption = "MQAR accuracy, best over " + axis +
                  " (last evaluation of each point; where fewer points are done than tried, the row may hold an "
                  "unfinished point's last evaluation, not a final result)";
  table.corner = "configuration";
  table.columns = {"sequence length / pairs", "d_model", "accuracy", "best " + axis, "state (bytes)", "points",
                   "done"};
  table.csv_columns = {"seq_len_pairs", "d_model", "accuracy", "best_" + axis, "state_bytes", "points", "done"};
  for (const auto& row : rows) {
    table.rows.push_back(row.line);
    // d_model and the count of points are integers: words, not 3-significant-digit numbers ("64.0").
    table.cells.push_back({TableCell::words(setting(row.seq_len, row.pairs)), TableCell::words(std::to_string(row.d_model)),
                           std::isfinite(row.accuracy) ? TableCell::value(row.accuracy) : TableCell::words("no result"),
                           TableCell::words(row.best_axis_value.empty() ? "-" : row.best_axis_value),
                           std::isfinite(row.state_bytes) ? TableCell::value(row.state_bytes) : TableCell{},
                           TableCell::words(std::to_string(row.candidates)),
                           TableCell::words(std::to_string(row.finished))});
  }
  return table;
}

namespace {
// A published value of Zoology's Figure 2 (arXiv 2312.04927), read off the figure as the issue
// states them: relation "≥" / "≤" hold at every width listed (d_model 0), "=" at one width.
struct PublishedValue {
  const char* architecture;  // in the paper
  const char* mixlab_line;   // the model name in mixlab (the line's first word)
  int64_t seq_len, pairs, d_model;
  const char* relation;
  double value;
};
const PublishedValue kPublished[] = {
    {"attention", "attention", 64, 4, 0, "≥", 0.97},
    {"attention", "attention", 128, 8, 0, "≥", 0.97},
    {"attention", "attention", 256, 16, 0, "≥", 0.97},
    {"attention", "attention", 512, 64, 0, "≥", 0.97},
    {"Hyena (long convolution)", "fft_conv", 512, 64, 0, "≤", 0.18},
    {"RWKV (fixed-state recurrence)", "linear_attention", 512, 64, 64, "=", 0.02},
    {"RWKV (fixed-state recurrence)", "linear_attention", 512, 64, 128, "=", 0.03},
    {"RWKV (fixed-state recurrence)", "linear_attention", 512, 64, 256, "=", 0.16},
    {"RWKV (fixed-state recurrence)", "linear_attention", 512, 64, 512, "=", 0.37},
};

std::string signed_number(double x) { return (x >= 0 ? "+" : "") + short_number(x); }
}  // namespace

Table published_comparison(const std::vector<RecallRow>& rows) {
  Table table;
  table.caption = "Zoology Figure 2 (published) beside mixlab (best over the learning rates)";
  table.corner = "paper architecture";
  table.columns = {"mixlab line", "sequence length / pairs", "d_model", "published", "mixlab", "difference"};
  table.csv_columns = {"mixlab_line", "seq_len_pairs", "d_model", "published", "mixlab", "difference"};
  for (const auto& published : kPublished) {
    // mixlab's figure: the worst width for "≥" (it must hold at every width), the best for "≤".
    std::vector<const RecallRow*> matching;
    for (const auto& row : rows)
      if (row.line.substr(0, row.line.find(' ')) == published.mixlab_line && row.seq_len == published.seq_len &&
          row.pairs == published.pairs && (published.d_model == 0 || row.d_model == published.d_model) &&
          std::isfinite(row.accuracy))
        matching.push_back(&row);
    const std::string relation = published.relation;
    std::string line = published.mixlab_line, mixlab = "not run", difference = "-";
    if (!matching.empty()) {
      auto by_accuracy = [](const RecallRow* a, const RecallRow* b) { return a->accuracy < b->accuracy; };
      const RecallRow* chosen = relation == "≤" ? *std::max_element(matching.begin(), matching.end(), by_accuracy)
                                                : *std::min_element(matching.begin(), matching.end(), by_accuracy);
      line = chosen->line;
      mixlab = short_number(chosen->accuracy) +
               (published.d_model == 0 ? " (" + std::string(relation == "≤" ? "best" : "worst") + " width, d=" +
                                             std::to_string(chosen->d_model) + ")"
                                       : "");
      const double gap = chosen->accuracy - published.value;
      if (relation == "≥") difference = gap >= 0 ? "holds" : "below by " + short_number(-gap);
      else if (relation == "≤") difference = gap <= 0 ? "holds" : "above by " + short_number(gap);
      else difference = signed_number(gap);
    }
    table.rows.push_back(published.architecture);
    table.cells.push_back({TableCell::words(line), TableCell::words(setting(published.seq_len, published.pairs)),
                           TableCell::words(published.d_model == 0 ? "every" : std::to_string(published.d_model)),
                           TableCell::words(relation + " " + short_number(published.value)), TableCell::words(mixlab),
                           TableCell::words(difference)});
  }
  return table;
}

void add_recall_section(Database& database, const Filter& filter, const std::string& axis, Section& section,
                        const std::function<void(const PlotSpec&, const ColourMap&, Section&)>& draw,
                        const std::function<void(const Table&, const std::string&)>& write_table) {
  const auto rows = recall_rows(database, filter, axis);
  if (rows.empty()) {
    section.paragraphs.push_back("No trained synthetic-task point passes the filter: nothing to take the best over " +
                                 axis + ".");
    return;
  }
  section.paragraphs.push_back(
      "Each point of these plots is the best final accuracy over " + axis +
      " of one configuration (Zoology, Figure 2: the maximum over four learning rates); the state is the "
      "inference state of one sequence at the task's length (cost()).");
  std::vector<std::string> lines;  // one colour per line, the same in every panel
  for (const auto& row : rows) lines.push_back(row.line);
  const ColourMap colours(lines);
  for (const auto& plot : recall_plots(rows, axis)) draw(plot, colours, section);
  const Table all = recall_table(rows, axis);
  write_table(all, "recall_best_over");
  section.tables.push_back({all, "recall_best_over"});
  const Table published = published_comparison(rows);
  write_table(published, "recall_published");
  section.tables.push_back({published, "recall_published"});
}

}  // namespace mixlab::reports
