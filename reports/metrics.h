#pragma once
// The metric names that `mixlab report table/plot --metric` accepts, each mapped to a phase and a
// column of `measurements` (or of `points`).  Only names from this list reach SQL, so a metric
// name can never inject anything.

#include <string>
#include <vector>

namespace mixlab::reports {

struct Metric {
  std::string name;          // what the user types: fwd_bwd_ms
  std::string phase;         // measurements.phase; "" = phase-independent (max over phases); "points" = points table
  std::string column;        // measurements.<column>, or extra.KEY: extra_json's KEY; also `fits.metric`
  std::string title;         // plot title: "Forward + backward latency"
  std::string unit;          // axis unit after scaling: "ms", "tokens/s", "MiB"
  double scale = 1.0;        // displayed value = stored value * scale
  bool higher_is_better = false;
  bool scales_with_length = true;  // false for `params`: one value per configuration

  std::string axis_label() const { return title + " (" + unit + ")"; }
};

const std::vector<Metric>& metrics();
// Throws ReportError naming the valid metric names.
const Metric& metric_by_name(const std::string& name);
std::string metric_names_text();  // "fwd_ms, fwd_bwd_ms, ..."

}  // namespace mixlab::reports
