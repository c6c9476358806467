// The provenance section: which database and filter the report read, and where each sweep ran.

#include "reports/sections/sections.h"

#include <filesystem>

namespace mixlab::reports {

Section provenance_section(ReportContext& context) {
  Section provenance{"Provenance", {}, {}, {}};
  const ReportOptions& options = context.options;
  // The database as seen from the report's folder: the page names it the same way wherever the
  // two are copied together (an absolute path would name the machine that drew it).
  namespace fs = std::filesystem;
  std::error_code error;
  const fs::path relative = fs::proximate(fs::absolute(options.db_path), fs::absolute(options.out_dir), error);
  provenance.paragraphs.push_back("Database: " + (error ? options.db_path : relative.generic_string()) +
                                  (options.filter.empty() ? "" : "; filter: " + options.filter.text) + "; " +
                                  std::to_string(context.points.size()) + " configurations.");
  for (const auto& sweep : load_sweeps(context.database))
    provenance.paragraphs.push_back("- sweep " + sweep.name + ": " + sweep.device_label + ", " + sweep.dtype + ", LibTorch " +
                                    sweep.torch_version + ", commit " + sweep.git_commit + ", started " +
                                    sweep.started_at);
  return provenance;
}

}  // namespace mixlab::reports
