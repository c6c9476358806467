// `mixlab report`: plots, tables, fits, crossovers and the findings, from one results database,
// written section by section (reports/sections/sections.h).

#include "reports/report.h"

#include "reports/document.h"
#include "reports/evidence.h"
#include "reports/queries.h"
#include "reports/sections/sections.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <iostream>

namespace mixlab::reports {

namespace fs = std::filesystem;

// ------------------------------------------------------------------ building blocks

PlotSpec scaling_plot(const Metric& metric, const std::vector<MetricRow>& rows) {
  PlotSpec spec;
  spec.name = "scaling_" + metric.name;
  spec.title = metric.title + " vs sequence length";
  spec.x_label = metric.phase == "decode" ? "context length N (tokens)" : "sequence length N (tokens)";
  spec.y_label = metric.axis_label();
  for (const auto& series : series_by_label(rows, metric.scale))
    spec.curves.push_back({series.label, series.measured, series.failed, series.spread, series.samples});
  return spec;
}

// Fits and crossovers use the measurements above resolution only, with their repeats.
std::vector<FitRecord> fit_metric(const Metric& metric, const std::vector<MetricRow>& rows) {
  std::vector<FitRecord> fits;
  for (const auto& series : series_by_label(resolved_rows(metric, rows), 1.0))
    if (auto fit = fit_with_interval(series.measured, series.samples))
      fits.push_back({series.label, series.point_id, &metric, *fit});
  return fits;
}

namespace {
std::vector<double> relative_noise(const Series& series) {
  std::vector<double> noise;
  for (size_t i = 0; i < series.measured.size(); ++i)
    noise.push_back(std::isfinite(series.spread[i]) && series.measured[i].second > 0
                        ? series.spread[i] / series.measured[i].second
                        : 0.0);
  return noise;
}
}  // namespace

std::vector<CrossoverRecord> crossovers_of_metric(const Metric& metric, const std::vector<MetricRow>& rows) {
  std::vector<CrossoverRecord> result;
  const auto series = series_by_label(resolved_rows(metric, rows), 1.0);
  for (size_t i = 0; i < series.size(); ++i)
    for (size_t j = i + 1; j < series.size(); ++j)
      for (const auto& crossing :
           find_crossovers(series[i].label, series[i].measured, series[j].label, series[j].measured,
                           metric.higher_is_better, kCrossoverMinRatio, relative_noise(series[i]), relative_noise(series[j])))
        result.push_back({&metric, crossing});
  return result;
}

// ------------------------------------------------------------------ write_report

namespace {
bool has_content(const Section& section) {
  return !section.paragraphs.empty() || !section.figures.empty() || !section.tables.empty();
}
}  // namespace

ReportResult write_report(const ReportOptions& options) {
  // A database we may not write to (a shared, read-only copy) is still reported, without storing fits.
  const bool store = options.store_fits && ::access(options.db_path.c_str(), W_OK) == 0;
  if (options.store_fits && !store)
    std::cerr << "mixlab report: " << options.db_path << " is read-only; fits and crossovers are not stored in it\n";
  Database database(options.db_path, store);
  ReportResult result;
  ReportContext context(options, database, result);
  // Plots first, tables after: the figure sections give their tables to one "Tables" section.
  std::vector<Section> before_tables, after_tables;
  Section tables{"Tables", {}, {}, {}};
  for (const ReportSection& entry : report_sections()) {
    Section section = entry.make(context);
    if (entry.tables_at_end) {
      tables.tables.insert(tables.tables.end(), section.tables.begin(), section.tables.end());
      section.tables.clear();
    }
    if (has_content(section)) (entry.after_tables ? after_tables : before_tables).push_back(std::move(section));
  }
  std::vector<Section> page = std::move(before_tables);
  if (has_content(tables)) page.push_back(std::move(tables));
  page.insert(page.end(), after_tables.begin(), after_tables.end());
  const std::string title = "mixlab report: " + fs::path(options.db_path).filename().string();
  const fs::path md = context.out_dir / "index.md", html = context.out_dir / "index.html";
  write_text(md, markdown_document(title, page));
  write_text(html, html_document(title, page, context.out_dir));
  result.index_md = md.string();
  result.index_html = html.string();
  if (store) store_fits(database, result.fits, result.crossovers);
  return result;
}

}  // namespace mixlab::reports
