// The evaluations section: at each configuration's last evaluated step, accuracy against context
// length and loss by position bucket (one plot per task), and the evaluation summary table.

#include "reports/sections/sections.h"

#include <algorithm>

namespace mixlab::reports {

namespace {

using CurvesByTask = std::map<std::string, std::map<std::string, PlotCurve>>;  // task -> label -> curve

// Rows of the last step evaluated for each (label, task, metric).
std::vector<const EvaluationRow*> last_evaluated(const std::vector<EvaluationRow>& evaluations) {
  std::map<std::string, int64_t> last_step;
  auto key = [](const EvaluationRow& row) { return row.label + "\n" + row.task + "\n" + row.metric; };
  for (const auto& row : evaluations) last_step[key(row)] = std::max(last_step[key(row)], row.step);
  std::vector<const EvaluationRow*> rows;
  for (const auto& row : evaluations)
    if (row.step == last_step[key(row)]) rows.push_back(&row);
  return rows;
}

// Each task's curves as one plot, points sorted along x.
void draw_per_task(ReportContext& context, Section& section, CurvesByTask& curves_by_task,
                   PlotSpec (*spec_of)(const std::string& task)) {
  for (auto& [task, curves] : curves_by_task) {
    PlotSpec spec = spec_of(task);
    for (auto& [label, curve] : curves) {
      std::sort(curve.points.begin(), curve.points.end());
      spec.curves.push_back(curve);
    }
    context.draw(spec, section);
  }
}

PlotSpec accuracy_plot(const std::string& task) {
  PlotSpec spec;
  spec.name = "accuracy_vs_context_" + task;
  spec.title = task + ": accuracy vs context length";
  spec.x_label = "context length (tokens)";
  spec.y_label = "accuracy (fraction correct)";
  spec.log_y = false;
  return spec;
}

PlotSpec position_plot(const std::string& task) {
  PlotSpec spec;
  spec.name = "loss_by_position_" + task;
  spec.title = (task == "text" ? std::string("Validation") : task) + " loss by position";
  spec.x_label = "position bucket start (tokens)";
  spec.y_label = "loss (nats/token)";
  spec.log_x = false;
  spec.log_y = false;
  spec.length_axis = false;
  return spec;
}

}  // namespace

Section evaluations_section(ReportContext& context) {
  Section evaluation{"Evaluations", {}, {}, {}};
  if (context.evaluations.empty()) return evaluation;
  CurvesByTask accuracy, by_position;
  for (const EvaluationRow* row : last_evaluated(context.evaluations)) {
    if (row->metric == "accuracy" && row->seq_len > 0) {
      auto& curve = accuracy[row->task][row->label];
      curve.label = row->label;
      curve.points.emplace_back(static_cast<double>(row->seq_len), row->value);
    } else if (row->metric == "loss_bucket" && row->bucket >= 0) {
      auto& curve = by_position[row->task][row->label];
      curve.label = row->label;
      curve.points.emplace_back(static_cast<double>(row->bucket), row->value);
    }
  }
  draw_per_task(context, evaluation, accuracy, accuracy_plot);
  draw_per_task(context, evaluation, by_position, position_plot);
  const Table summary = evaluation_summary(context.evaluations);
  if (!summary.columns.empty()) {
    context.write_table(summary, "evaluation_summary");
    evaluation.tables.push_back({summary, "evaluation_summary"});
  }
  return evaluation;
}

}  // namespace mixlab::reports
