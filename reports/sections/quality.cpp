// The quality-vs-cost section: one point per configuration, its final validation loss (or each
// task's accuracy, averaged over context lengths) against its training FLOPs and against its
// median training throughput.

#include "reports/sections/sections.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <tuple>

namespace mixlab::reports {

namespace {

// Last value per label of an evaluation (task, metric), averaged over context lengths.
std::map<std::string, double> final_evaluation(const std::vector<EvaluationRow>& evaluations, const std::string& task,
                                               const std::string& metric) {
  std::map<std::string, int64_t> last_step;
  for (const auto& row : evaluations)
    if (row.task == task && row.metric == metric) last_step[row.label] = std::max(last_step[row.label], row.step);
  std::map<std::string, std::pair<double, int>> sums;
  for (const auto& row : evaluations)
    if (row.task == task && row.metric == metric && row.step == last_step[row.label]) {
      sums[row.label].first += row.value;
      sums[row.label].second += 1;
    }
  std::map<std::string, double> result;
  for (const auto& [label, sum] : sums) result[label] = sum.first / sum.second;
  return result;
}

struct TrainingCosts {
  std::map<std::string, double> final_flops;  // label -> training FLOPs at the last step
  std::map<std::string, double> throughput;   // label -> median tokens/s
};

TrainingCosts training_costs(const std::vector<TrainRow>& train) {
  TrainingCosts costs;
  std::map<std::string, std::vector<double>> speeds;
  std::map<std::string, int64_t> last;
  for (const auto& row : train) {
    if (row.step >= last[row.label]) last[row.label] = row.step, costs.final_flops[row.label] = row.flops;
    if (std::isfinite(row.tokens_per_s) && row.tokens_per_s > 0) speeds[row.label].push_back(row.tokens_per_s);
  }
  for (auto& [label, list] : speeds) {
    std::sort(list.begin(), list.end());
    costs.throughput[label] = list[list.size() / 2];
  }
  return costs;
}

// A quality measure: (task, metric, its name in titles, its axis label).
using Quality = std::tuple<std::string, std::string, std::string, std::string>;

std::vector<Quality> qualities_of(const std::vector<EvaluationRow>& evaluations) {
  std::vector<Quality> qualities = {{"text", "loss", "Validation loss", "validation loss (nats/token)"}};
  std::set<std::string> accuracy_tasks;
  for (const auto& row : evaluations)
    if (row.metric == "accuracy") accuracy_tasks.insert(row.task);
  for (const auto& task : accuracy_tasks)
    qualities.emplace_back(task, "accuracy", task + " accuracy", task + " accuracy (mean over context lengths)");
  return qualities;
}

}  // namespace

// Titles: "Validation loss vs training FLOPs", "mqar accuracy vs training throughput (tokens/s)".
Section quality_section(ReportContext& context) {
  Section quality{"Quality vs cost", {}, {}, {}};
  if (context.train.empty() || context.evaluations.empty()) return quality;
  const TrainingCosts costs = training_costs(context.train);
  for (const auto& [task, metric, name, axis] : qualities_of(context.evaluations)) {
    const auto values = final_evaluation(context.evaluations, task, metric);
    if (values.empty()) continue;
    for (const auto& [cost_of, cost_name, cost_axis] :
         {std::make_tuple(&costs.final_flops, std::string("flops"), std::string("training FLOPs")),
          std::make_tuple(&costs.throughput, std::string("throughput"), std::string("training throughput (tokens/s)"))}) {
      PlotSpec spec;
      spec.name = "quality_" + task + "_" + metric + "_vs_" + cost_name;
      spec.title = name + " vs " + cost_axis;
      spec.x_label = cost_axis;
      spec.y_label = axis;
      spec.log_y = false;
      spec.length_axis = false;
      spec.style = PlotSpec::Style::points;
      for (const auto& [label, value] : values) {
        const auto cost = cost_of->find(label);
        if (cost != cost_of->end() && cost->second > 0) spec.curves.push_back({label, {{cost->second, value}}, {}});
      }
      if (!spec.curves.empty()) context.draw(spec, quality);
    }
  }
  return quality;
}

}  // namespace mixlab::reports
