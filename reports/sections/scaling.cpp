// The scaling section: each metric against sequence length, as a plot and a pivot table
// (configurations × lengths); a metric that does not vary with length gets its table only.

#include "reports/sections/sections.h"

namespace mixlab::reports {

Section scaling_section(ReportContext& context) {
  Section scaling{"Cost vs sequence length", {}, {}, {}};
  for (const auto& metric : metrics()) {
    const auto found = context.rows_by_metric.find(metric.name);
    if (found == context.rows_by_metric.end()) continue;
    const Table table = pivot_metric(found->second, metric, true);
    context.write_table(table, metric.name);
    if (metric.scales_with_length) context.draw(scaling_plot(metric, found->second), scaling);
    scaling.tables.push_back({table, metric.name});
  }
  return scaling;
}

}  // namespace mixlab::reports
