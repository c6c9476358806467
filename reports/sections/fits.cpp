// The fits section: every fitted scaling exponent with its 95% bootstrap interval, and every
// crossover, as tables beside index.md (OUT/fits.{md,tex,csv}, OUT/crossovers.{md,csv}).

#include "reports/sections/sections.h"

#include "reports/text.h"

#include <cmath>
#include <cstdio>

namespace mixlab::reports {

std::string exponent_text(double exponent) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.2f", exponent + 0.0);
  return std::string(buffer) == "-0.00" ? "0.00" : buffer;
}

std::string interval_text(const PowerLawFit& fit) {
  if (!std::isfinite(fit.ci_low)) return "-";
  return exponent_text(fit.ci_low) + " to " + exponent_text(fit.ci_high);
}

namespace {

std::string r2_text(double r2) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.3f", r2);
  return buffer;
}

Table fits_table(const std::vector<FitRecord>& fits) {
  Table table;
  table.caption = "Fitted scaling exponents: slope of log(metric) vs log(N), least squares over the upper half of the "
                  "measured lengths (at least 4 points), with its 95% bootstrap interval";
  table.corner = "configuration";
  table.columns = {"metric", "exponent", "95% CI", "R²", "N from", "N to", "points"};
  table.csv_columns = {"metric", "exponent", "ci", "r2", "n_min", "n_max", "points"};
  for (const auto& record : fits) {
    table.rows.push_back(record.label);
    table.cells.push_back({TableCell::words(record.metric->name), TableCell::words(exponent_text(record.fit.exponent)),
                           TableCell::words(interval_text(record.fit)),
                           TableCell::words(r2_text(record.fit.r2)),
                           TableCell::words(std::to_string(static_cast<int64_t>(record.fit.n_min))),
                           TableCell::words(std::to_string(static_cast<int64_t>(record.fit.n_max))),
                           TableCell::words(std::to_string(record.fit.count))});
  }
  return table;
}

Table crossovers_table(const std::vector<CrossoverRecord>& crossovers) {
  Table table;
  table.caption = "Crossovers: above N*, the first configuration is better on the metric (interpolated in log-log)";
  table.corner = "metric";
  table.columns = {"better above N*", "better below N*", "N*"};
  table.csv_columns = {"faster_label", "slower_label", "seq_len"};
  for (const auto& record : crossovers) {
    table.rows.push_back(record.metric->name);
    table.cells.push_back({TableCell::words(record.crossover.better_label), TableCell::words(record.crossover.worse_label),
                           TableCell::words(format_number(record.crossover.seq_len))});
  }
  return table;
}

}  // namespace

Section fits_section(ReportContext& context) {
  Section section{"Fitted exponents and crossovers", {}, {}, {}};
  const ReportResult& result = context.result;
  if (!result.fits.empty()) {
    section.paragraphs.push_back(
        "Exponent: least-squares slope of log(metric) against log(N) over the upper half of each configuration's measured "
        "lengths (at least 4 points; fewer than 4 measured lengths give no fit), with a 95% bootstrap interval (lengths "
        "and timed repeats resampled). Failed sizes and values below the instrument's resolution are not fitted. "
        "Crossovers: curves interpolated linearly in log-log between measured points, counted only where the curves "
        "differ beyond their noise on both sides.");
    const Table fits = fits_table(result.fits);
    context.write_table_beside_index(fits, "fits", {TableFormat::markdown, TableFormat::latex, TableFormat::csv});
    section.tables.push_back({fits, ""});
  }
  if (!result.crossovers.empty()) {
    const Table crossings = crossovers_table(result.crossovers);
    context.write_table_beside_index(crossings, "crossovers", {TableFormat::markdown, TableFormat::csv});
    section.tables.push_back({crossings, ""});
  }
  return section;
}

}  // namespace mixlab::reports
