#pragma once
// What every section of a report reads and where it writes: the options, the database, the
// points and rows loaded once through reports/queries.h, the fits and crossovers computed from
// them, and the output folders (OUT/plots, OUT/tables) with the list of files written.

#include "reports/document.h"
#include "reports/queries.h"
#include "reports/report.h"

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace mixlab::reports {

struct ReportContext {
  // Loads the points, every metric with at least one usable value, the training log and the
  // evaluations, and fits each length-dependent metric (result.fits, result.crossovers).
  ReportContext(const ReportOptions& options, Database& database, ReportResult& result);

  const ReportOptions& options;
  Database& database;
  ReportResult& result;  // the files written so far, the fits and crossovers
  std::filesystem::path out_dir, plot_dir, table_dir;

  std::vector<PointInfo> points;
  ColourMap colours;                                             // one colour per point label
  std::map<std::string, std::vector<MetricRow>> rows_by_metric;  // metric name -> rows
  std::vector<TrainRow> train;
  std::vector<EvaluationRow> evaluations;

  // OUT/tables/STEM.{md,tex,csv}
  void write_table(const Table& table, const std::string& stem);
  // OUT/STEM.EXT for each format (the fits and crossovers tables sit beside index.md).
  void write_table_beside_index(const Table& table, const std::string& stem, const std::vector<TableFormat>& formats);
  // OUT/plots/NAME.{png,svg,pdf,...}, listed as a figure of `section`; in the points' colours,
  // or in a palette of the caller's (e.g. one colour per mixer).
  void draw(const PlotSpec& spec, Section& section) { draw_with(spec, colours, section); }
  void draw_with(const PlotSpec& spec, const ColourMap& palette, Section& section);
};

// Writes `text` to `path`, creating its folder; throws ReportError when it cannot.
void write_text(const std::filesystem::path& path, const std::string& text);

}  // namespace mixlab::reports
