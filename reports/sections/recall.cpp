// The recall section: `mixlab report --best-over train.lr` takes, for every configuration, the
// best final accuracy over the swept axis and draws Zoology's Figure 2 layout beside the
// published values (reports/recall_figure.h; Arora et al., arXiv 2312.04927, Figure 2).

#include "reports/recall_figure.h"
#include "reports/sections/sections.h"

namespace mixlab::reports {

Section recall_section(ReportContext& context) {
  Section section{"Recall: best over " + context.options.best_over, {}, {}, {}};
  if (context.options.best_over.empty()) return section;
  add_recall_section(
      context.database, context.options.filter, context.options.best_over, section,
      [&](const PlotSpec& spec, const ColourMap& palette, Section& into) { context.draw_with(spec, palette, into); },
      [&](const Table& table, const std::string& stem) { context.write_table(table, stem); });
  return section;
}

}  // namespace mixlab::reports
