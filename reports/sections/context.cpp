// Loading a report's data once and writing its files (reports/sections/context.h).

#include "reports/sections/context.h"

#include "reports/text.h"

#include <cmath>
#include <fstream>

namespace mixlab::reports {

namespace fs = std::filesystem;

namespace {

std::vector<std::string> labels_of(const std::vector<PointInfo>& points) {
  std::vector<std::string> labels;
  for (const auto& point : points) labels.push_back(point.label);
  return labels;
}

// A metric is reported when one of its values is ok and finite (and, for a per-configuration
// metric such as the parameter count, positive).
bool has_usable_value(const Metric& metric, const std::vector<MetricRow>& rows) {
  for (const auto& row : rows)
    if (row.status == "ok" && std::isfinite(row.value) && (metric.scales_with_length || row.value > 0)) return true;
  return false;
}

}  // namespace

ReportContext::ReportContext(const ReportOptions& options, Database& database, ReportResult& result)
    : options(options),
      database(database),
      result(result),
      out_dir(options.out_dir),
      plot_dir(out_dir / "plots"),
      table_dir(out_dir / "tables"),
      points(load_points(database, options.filter)),
      colours(labels_of(points)) {
  fs::create_directories(plot_dir);
  fs::create_directories(table_dir);
  for (const auto& metric : metrics()) {
    auto rows = load_metric(database, metric, options.filter, points);
    if (!has_usable_value(metric, rows)) continue;
    if (metric.scales_with_length) {
      auto fits = fit_metric(metric, rows);
      result.fits.insert(result.fits.end(), fits.begin(), fits.end());
      auto crossings = crossovers_of_metric(metric, rows);
      result.crossovers.insert(result.crossovers.end(), crossings.begin(), crossings.end());
    }
    rows_by_metric[metric.name] = std::move(rows);
  }
  train = load_train_log(database, options.filter, points);
  evaluations = load_evaluations(database, options.filter, points);
}

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw ReportError(path.string() + ": cannot write");
}

void ReportContext::write_table(const Table& table, const std::string& stem) {
  for (TableFormat format : {TableFormat::markdown, TableFormat::latex, TableFormat::csv}) {
    const fs::path path = table_dir / (stem + "." + extension(format));
    write_text(path, render(table, format));
    result.tables.push_back(path.string());
  }
}

void ReportContext::write_table_beside_index(const Table& table, const std::string& stem,
                                             const std::vector<TableFormat>& formats) {
  for (TableFormat format : formats) {
    const fs::path path = out_dir / (stem + "." + extension(format));
    write_text(path, render(table, format));
    result.tables.push_back(path.string());
  }
}

void ReportContext::draw_with(const PlotSpec& spec, const ColourMap& palette, Section& section) {
  auto images = render_plot(spec, palette, plot_dir.string(), options.formats);
  result.plots.insert(result.plots.end(), images.begin(), images.end());
  section.figures.push_back({spec.title, sanitize_filename(spec.name)});
}

}  // namespace mixlab::reports
