#pragma once
// `mixlab report`: everything a results database supports, in one folder.
//
//   OUT/index.md, OUT/index.html      findings (exponents, crossovers, best configuration per
//                                     length), every table and plot; the HTML is self-contained
//                                     (PNG images embedded as base64 data URIs)
//   OUT/plots/NAME.{png,svg,pdf,gp,dat}
//   OUT/tables/NAME.{md,tex,csv}
//   OUT/fits.{md,tex,csv}, OUT/crossovers.{md,csv}
// and the database's `fits` and `crossovers` tables (rows for the same configuration / pair,
// phase and metric are replaced).

#include "reports/database.h"
#include "reports/filter.h"
#include "reports/fit_records.h"
#include "reports/metrics.h"
#include "reports/plots.h"
#include "reports/scaling_fit.h"
#include "reports/tables.h"

#include <string>
#include <vector>

namespace mixlab::reports {

struct ReportOptions {
  std::string db_path;
  std::string out_dir = "report";
  Filter filter;
  bool store_fits = true;  // write the fits / crossovers tables into the database
  std::vector<std::string> formats = {"png", "svg", "pdf"};
  // A swept config path ("train.lr"): adds the best-over-it section, Zoology's Figure 2 layout
  // (reports/recall_figure.h).  Empty: none.
  std::string best_over;
};

struct ReportResult {
  std::vector<std::string> plots;   // image paths (every format)
  std::vector<std::string> tables;  // table file paths
  std::vector<FitRecord> fits;
  std::vector<CrossoverRecord> crossovers;
  std::string index_md, index_html;  // paths
};

// The sections of reports/sections/sections.h, in their order, written to OUT; then the fits and
// crossovers stored (store_fits, reports/queries.h) unless the database is read-only.
ReportResult write_report(const ReportOptions& options);

// Building blocks, also used by `report table` and `report plot`:
// the scaling plot of one metric (one line per configuration, failed sizes marked).
PlotSpec scaling_plot(const Metric& metric, const std::vector<MetricRow>& rows);
std::vector<FitRecord> fit_metric(const Metric& metric, const std::vector<MetricRow>& rows);
std::vector<CrossoverRecord> crossovers_of_metric(const Metric& metric, const std::vector<MetricRow>& rows);

}  // namespace mixlab::reports
