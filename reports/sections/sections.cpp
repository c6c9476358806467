// The order of a report's sections (reports/sections/sections.h): the figures first, their
// tables gathered after them, then the fits, and the provenance last.

#include "reports/sections/sections.h"

namespace mixlab::reports {

const std::vector<ReportSection>& report_sections() {
  static const std::vector<ReportSection> sections = {
      {findings_section, false, false},    {scaling_section, true, false}, {training_section, true, false},
      {evaluations_section, true, false},  {recall_section, true, false},  {quality_section, true, false},
      {fits_section, false, false},
      {provenance_section, false, true},
  };
  return sections;
}

}  // namespace mixlab::reports
