// The provenance section: which database and filter the report read, and where each sweep ran.

#include "reports/sections/sections.h"

namespace mixlab::reports {

Section provenance_section(ReportContext& context) {
  Section provenance{"Provenance", {}, {}, {}};
  const ReportOptions& options = context.options;
  provenance.paragraphs.push_back("Database: " + options.db_path +
                                  (options.filter.empty() ? "" : "; filter: " + options.filter.text) + "; " +
                                  std::to_string(context.points.size()) + " configurations.");
  for (const auto& sweep : load_sweeps(context.database))
    provenance.paragraphs.push_back("- sweep " + sweep.name + ": " + sweep.device_label + ", " + sweep.dtype + ", LibTorch " +
                                    sweep.torch_version + ", commit " + sweep.git_commit + ", started " +
                                    sweep.started_at);
  return provenance;
}

}  // namespace mixlab::reports
