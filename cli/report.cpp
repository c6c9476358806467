// `mixlab report`: plots, tables, fitted exponents and crossovers from a results database.
//
//   mixlab report --db results.db --out report/ [--where FILTER] [--no-store] [--best-over train.lr]
//   mixlab report table --db results.db --metric fwd_bwd_ms [--rows config --cols seq_len]
//                       [--format markdown|latex|csv|html] [--where FILTER] [--out FILE]
//   mixlab report plot  --db results.db --metric tokens_per_s [--where FILTER] [--out DIR]
//
// FILTER: field in ('a', 'b') | field = v | field != v, joined by `and` (see reports/filter.h);
// parsed, validated and bound as SQL parameters.

#include "cli/command.h"
#include "reports/staged_folder.h"
#include "reports/queries.h"
#include "reports/report.h"
#include "reports/text.h"

#include <filesystem>
#include <fstream>
#include <iostream>

namespace mixlab::cli {
namespace {

namespace reports = mixlab::reports;

struct ReportCommandOptions {
  std::string db, out = "report", where, metric, rows = "config", cols = "seq_len", format = "markdown";
  std::string best_over;
  bool no_store = false;
  std::vector<std::string> formats = {"png", "svg", "pdf"};
};

int require_db(const ReportCommandOptions& options) {
  if (options.db.empty()) {
    std::cerr << "mixlab report: --db is required (a results database, e.g. results/quickstart.db)\n";
    return 2;
  }
  if (!std::filesystem::exists(options.db)) {
    std::cerr << "mixlab report: " << options.db << ": no such file\n";
    return 2;
  }
  return 0;
}

// Runs `body`, turning report errors (bad filter, metric, database, gnuplot) and SQLite errors
// into status 2.
template <typename Body>
int guarded(Body body) {
  try {
    return body();
  } catch (const reports::ReportError& error) {
    std::cerr << "mixlab report: " << error.what() << "\n";
    return 2;
  } catch (const sqlite::Error& error) {  // the database could not be read as the report needs
    std::cerr << "mixlab report: " << error.what() << "\n";
    return 2;
  }
}

int run_report(const ReportCommandOptions& options) {
  if (int status = require_db(options)) return status;
  return guarded([&] {
    reports::ReportOptions report;
    report.db_path = options.db;
    report.filter = reports::parse_filter(options.where);
    report.store_fits = !options.no_store;
    report.formats = options.formats;
    report.best_over = options.best_over;
    reports::StagedFolder folder(options.out);  // OUT appears complete or not at all
    report.out_dir = folder.staging().string();
    const auto result = reports::write_report(report);
    folder.commit();
    const std::filesystem::path out(options.out);
    std::cout << "wrote " << (out / "index.html").string() << " and " << (out / "index.md").string() << " ("
              << result.plots.size()
              << " plot files, " << result.tables.size() << " table files, " << result.fits.size() << " fits, "
              << result.crossovers.size() << " crossovers)\n";
    return 0;
  });
}

int run_table(const ReportCommandOptions& options) {
  if (int status = require_db(options)) return status;
  return guarded([&] {
    const auto& metric = reports::metric_by_name(options.metric);
    const auto format = reports::parse_table_format(options.format);
    if (!((options.rows == "config" && options.cols == "seq_len") || (options.rows == "seq_len" && options.cols == "config")))
      throw reports::ReportError("--rows/--cols: one of them is `config`, the other `seq_len`; got --rows " + options.rows +
                                 " --cols " + options.cols);
    reports::Database database(options.db, false);
    const auto filter = reports::parse_filter(options.where);
    const auto points = reports::load_points(database, filter);
    const auto rows = reports::load_metric(database, metric, filter, points);
    if (rows.empty()) throw reports::ReportError(options.db + ": no " + metric.name + " values" + (filter.empty() ? "" : " matching the filter"));
    const std::string text = reports::render(reports::pivot_metric(rows, metric, options.rows == "config"), format);
    if (options.out.empty() || options.out == "-") {
      std::cout << text;
    } else {
      std::ofstream out(options.out, std::ios::binary);
      out << text;
      if (!out) throw reports::ReportError(options.out + ": cannot write");
      std::cout << "wrote " << options.out << "\n";
    }
    return 0;
  });
}

int run_plot(const ReportCommandOptions& options) {
  if (int status = require_db(options)) return status;
  return guarded([&] {
    const auto& metric = reports::metric_by_name(options.metric);
    if (!metric.scales_with_length)
      throw reports::ReportError("metric " + metric.name + " does not vary with sequence length; use `mixlab report table`");
    reports::Database database(options.db, false);
    const auto filter = reports::parse_filter(options.where);
    const auto all_points = reports::load_points(database, reports::Filter{});  // colours as in the full report
    std::vector<std::string> labels;
    for (const auto& point : all_points) labels.push_back(point.label);
    const auto points = reports::load_points(database, filter);
    const auto rows = reports::load_metric(database, metric, filter, points);
    if (rows.empty()) throw reports::ReportError(options.db + ": no " + metric.name + " values" + (filter.empty() ? "" : " matching the filter"));
    auto spec = reports::scaling_plot(metric, rows);
    if (!filter.empty()) spec.title += " (" + filter.text + ")";
    for (const auto& image : reports::render_plot(spec, reports::ColourMap(labels), options.out, options.formats))
      std::cout << image << "\n";
    return 0;
  });
}

void add_formats(CLI::App& app, ReportCommandOptions& options) {
  app.add_option("--formats", options.formats, "image formats, comma-separated (index.html embeds png, else svg)")
      ->delimiter(',')
      ->check(CLI::IsMember({"png", "svg", "pdf"}));
}

void add_common(CLI::App& app, ReportCommandOptions& options) {
  app.add_option("--db", options.db, "results database (SQLite), e.g. results/quickstart.db");
  app.add_option("--where", options.where,
                 "filter: field in ('a','b') | field = v | field != v, joined by 'and'; fields: label, mixer, mixers, "
                 "point_id, sweep, status, seq_len, batch, device, dtype");
}

}  // namespace

MIXLAB_REGISTER_COMMAND(report, "plots, tables, scaling exponents and crossovers from a results database",
                        [](CLI::App& app) -> Action {
                          auto options = std::make_shared<ReportCommandOptions>();
                          add_common(app, *options);
                          app.add_option("--out", options->out, "output folder (index.html, index.md, plots/, tables/)");
                          add_formats(app, *options);
                          app.add_flag("--no-store", options->no_store, "do not write the fits / crossovers tables into the database");
                          app.add_option("--best-over", options->best_over,
                                         "a swept config path, e.g. train.lr: add the best-over-it section "
                                         "(Zoology Figure 2 layout: accuracy vs d_model and vs state size)");
                          return [options] { return run_report(*options); };
                        });

static const CommandRegistrar mixlab_command_report_table(
    "report table", "one metric as a table: configuration x sequence length", [](CLI::App& app) -> Action {
      auto options = std::make_shared<ReportCommandOptions>();
      options->out = "";
      add_common(app, *options);
      app.add_option("--metric", options->metric, "metric: " + reports::metric_names_text())->required();
      app.add_option("--rows", options->rows, "config or seq_len");
      app.add_option("--cols", options->cols, "seq_len or config");
      app.add_option("--format", options->format, "markdown, latex, csv or html");
      app.add_option("--out", options->out, "output file (default: standard output)");
      return [options] { return run_table(*options); };
    });

static const CommandRegistrar mixlab_command_report_plot(
    "report plot", "one metric as a log-log plot against sequence length (PNG, SVG, PDF)", [](CLI::App& app) -> Action {
      auto options = std::make_shared<ReportCommandOptions>();
      options->out = "report/plots";
      add_common(app, *options);
      app.add_option("--metric", options->metric, "metric: " + reports::metric_names_text())->required();
      app.add_option("--out", options->out, "output folder");
      add_formats(app, *options);
      return [options] { return run_plot(*options); };
    });

}  // namespace mixlab::cli
