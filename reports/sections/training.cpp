// The training section: training loss against tokens seen and against training FLOPs, one line
// per configuration, and the training summary table.

#include "reports/sections/sections.h"

#include <cmath>

namespace mixlab::reports {

namespace {

PlotSpec loss_plot(const std::map<std::string, PlotCurve>& curves, bool against_tokens) {
  PlotSpec spec;
  spec.name = against_tokens ? "loss_vs_tokens" : "loss_vs_flops";
  spec.title = against_tokens ? "Training loss vs tokens" : "Training loss vs training FLOPs";
  spec.x_label = against_tokens ? "tokens seen" : "training FLOPs";
  spec.y_label = "training loss (nats/token)";
  spec.log_y = false;
  spec.length_axis = false;
  spec.style = PlotSpec::Style::lines;
  for (const auto& [label, curve] : curves)
    if (!curve.points.empty()) spec.curves.push_back(curve);
  return spec;
}

}  // namespace

Section training_section(ReportContext& context) {
  Section training{"Training", {}, {}, {}};
  if (context.train.empty()) return training;
  std::map<std::string, PlotCurve> by_tokens, by_flops;  // label -> curve
  for (const auto& row : context.train) {
    if (!std::isfinite(row.loss)) continue;
    by_tokens[row.label].label = row.label;
    by_flops[row.label].label = row.label;
    if (row.tokens > 0) by_tokens[row.label].points.emplace_back(static_cast<double>(row.tokens), row.loss);
    if (row.flops > 0) by_flops[row.label].points.emplace_back(row.flops, row.loss);
  }
  for (const bool against_tokens : {true, false}) {
    const PlotSpec spec = loss_plot(against_tokens ? by_tokens : by_flops, against_tokens);
    if (!spec.curves.empty()) context.draw(spec, training);
  }
  const Table summary = training_summary(context.train, context.evaluations);
  context.write_table(summary, "training_summary");
  training.tables.push_back({summary, "training_summary"});
  return training;
}

}  // namespace mixlab::reports
