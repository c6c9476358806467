#pragma once
// The report as a list of sections (docs/reports.md): each a function of the loaded report
// (reports/sections/context.h) that writes its plots and tables and returns its part of
// index.md / index.html.  write_report (reports/report.cpp) runs them in this order.

#include "reports/document.h"
#include "reports/sections/context.h"

#include <string>
#include <vector>

namespace mixlab::reports {

// Exponents with their bootstrap intervals, crossovers, the fastest configuration per length,
// measurements not to lean on, failed points.
Section findings_section(ReportContext& context);
// Per metric: its plot against sequence length and its pivot table.
Section scaling_section(ReportContext& context);
// Loss against tokens and against training FLOPs; the training summary.
Section training_section(ReportContext& context);
// Accuracy against context length and loss by position per task; the evaluation summary.
Section evaluations_section(ReportContext& context);
// With `report --best-over PATH`: the best over that swept axis in Zoology's Figure 2 layout
// (reports/recall_figure.h); empty otherwise.
Section recall_section(ReportContext& context);
// One point per configuration: final quality against training FLOPs and throughput.
Section quality_section(ReportContext& context);
// The fitted exponents and the crossovers, as tables beside index.md.
Section fits_section(ReportContext& context);
// The database, the filter, and each sweep's device, dtype, LibTorch version and commit.
Section provenance_section(ReportContext& context);

struct ReportSection {
  Section (*make)(ReportContext& context);
  bool tables_at_end;  // its tables go to the "Tables" section that follows the figures
  bool after_tables;   // it follows the "Tables" section
};

// Findings, scaling, training, evaluations, recall, quality, fits, [Tables], provenance.
const std::vector<ReportSection>& report_sections();

// "1.50" (never "-0.00"); a bootstrap interval as "1.41 to 1.58" ("-" when there is none).
std::string exponent_text(double exponent);
std::string interval_text(const PowerLawFit& fit);

}  // namespace mixlab::reports
