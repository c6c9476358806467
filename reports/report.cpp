// `mixlab report`: plots, tables, fits, crossovers and the findings, from one results database.

#include "reports/report.h"

#include "reports/recall_figure.h"

#include "reports/document.h"
#include "reports/evidence.h"
#include "reports/queries.h"
#include "reports/text.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

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

namespace {

std::string now_utc() {
  const std::time_t now = std::time(nullptr);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return buffer;
}

}  // namespace

void store_fits(Database& database, const std::vector<FitRecord>& fits, const std::vector<CrossoverRecord>& crossovers) {
  database.execute(
      "CREATE TABLE IF NOT EXISTS fits (db_label TEXT, point_id TEXT, phase TEXT, metric TEXT, exponent REAL, r2 REAL, "
      "n_min INTEGER, n_max INTEGER, created_at TEXT)");
  database.execute(
      "CREATE TABLE IF NOT EXISTS crossovers (phase TEXT, metric TEXT, faster_label TEXT, slower_label TEXT, "
      "seq_len REAL, created_at TEXT)");
  const std::string created = now_utc();
  database.execute("BEGIN IMMEDIATE");
  try {
    for (const auto& record : fits) {
      Statement remove(database, "DELETE FROM fits WHERE point_id = ? AND phase = ? AND metric = ?");
      remove.bind_all({record.point_id, record.metric->phase, record.metric->column});
      remove.step();
      Statement insert(database, "INSERT INTO fits (db_label, point_id, phase, metric, exponent, r2, n_min, n_max, "
                                 "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
      insert.bind_all({record.label, record.point_id, record.metric->phase, record.metric->column, record.fit.exponent,
                       record.fit.r2, static_cast<int64_t>(record.fit.n_min), static_cast<int64_t>(record.fit.n_max), created});
      insert.step();
    }
    // Replace every crossover of the pairs and metrics computed now (a crossing may have gone).
    std::set<std::tuple<std::string, std::string, std::string, std::string>> cleared;
    for (const auto& record : crossovers) {
      auto a = record.crossover.better_label, b = record.crossover.worse_label;
      if (b < a) std::swap(a, b);
      if (!cleared.insert({record.metric->phase, record.metric->column, a, b}).second) continue;
      Statement remove(database,
                       "DELETE FROM crossovers WHERE phase = ? AND metric = ? AND "
                       "((faster_label = ? AND slower_label = ?) OR (faster_label = ? AND slower_label = ?))");
      remove.bind_all({record.metric->phase, record.metric->column, a, b, b, a});
      remove.step();
    }
    for (const auto& record : crossovers) {
      Statement insert(database, "INSERT INTO crossovers (phase, metric, faster_label, slower_label, seq_len, created_at) "
                                 "VALUES (?, ?, ?, ?, ?, ?)");
      insert.bind_all({record.metric->phase, record.metric->column, record.crossover.better_label,
                       record.crossover.worse_label, record.crossover.seq_len, created});
      insert.step();
    }
    database.execute("COMMIT");
  } catch (...) {
    database.execute("ROLLBACK");
    throw;
  }
}

// ------------------------------------------------------------------ the report document

namespace {

// "becomes faster than B", "needs less memory than B", "overtakes B": said of the configuration
// that is better above the crossing.
std::string verb_phrase(const Metric& metric, const std::string& worse) {
  if (metric.unit == "ms") return "becomes faster than " + worse;
  if (metric.unit == "MiB") return "needs less memory than " + worse;
  if (metric.higher_is_better) return "overtakes " + worse;
  return "needs less than " + worse;
}

std::string exponent_text(double exponent) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.2f", exponent + 0.0);
  return std::string(buffer) == "-0.00" ? "0.00" : buffer;
}

std::string interval_text(const PowerLawFit& fit) {
  if (!std::isfinite(fit.ci_low)) return "-";
  return exponent_text(fit.ci_low) + " to " + exponent_text(fit.ci_high);
}

std::string r2_text(double r2) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.3f", r2);
  return buffer;
}

std::string lowercase_first(std::string text) {
  if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  return text;
}

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw ReportError(path.string() + ": cannot write");
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

// Last value per label of an evaluation (task, metric), averaged over context lengths.
std::map<std::string, double> final_evaluation(const std::vector<EvaluationRow>& evaluations, const std::string& task,
                                               const std::string& metric) {
  std::map<std::string, int64_t> last_step;
  for (const auto& row : evaluations)
    if (row.task == task && row.metric == metric) last_step[row.label] = std::max(last_step[row.label], row.step);
  std::map<std::string, std::pair<double, int>> sums;
  for (const auto& row : evaluations)
    if (row.task == task && row.metric == metric && row.step == last_step[row.label]) {
      sums[row.label].first += row.value;
      sums[row.label].second += 1;
    }
  std::map<std::string, double> result;
  for (const auto& [label, sum] : sums) result[label] = sum.first / sum.second;
  return result;
}

}  // namespace

// ------------------------------------------------------------------ write_report

ReportResult write_report(const ReportOptions& options) {
  // A database we may not write to (a shared, read-only copy) is still reported, without storing fits.
  const bool store = options.store_fits && ::access(options.db_path.c_str(), W_OK) == 0;
  if (options.store_fits && !store)
    std::cerr << "mixlab report: " << options.db_path << " is read-only; fits and crossovers are not stored in it\n";
  Database database(options.db_path, store);
  const fs::path out_dir(options.out_dir);
  const fs::path plot_dir = out_dir / "plots", table_dir = out_dir / "tables";
  fs::create_directories(plot_dir);
  fs::create_directories(table_dir);

  const auto points = load_points(database, options.filter);
  std::vector<std::string> labels;
  for (const auto& point : points) labels.push_back(point.label);
  const ColourMap colours(labels);
  ReportResult result;
  std::vector<Section> sections;
  Section findings{"Findings", {}, {}, {}};
  Section scaling{"Cost vs sequence length", {}, {}, {}};
  Section fit_section{"Fitted exponents and crossovers", {}, {}, {}};

  auto write_table = [&](const Table& table, const std::string& stem) {
    for (TableFormat format : {TableFormat::markdown, TableFormat::latex, TableFormat::csv}) {
      const fs::path path = table_dir / (stem + "." + extension(format));
      write_text(path, render(table, format));
      result.tables.push_back(path.string());
    }
  };
  auto draw_with = [&](const PlotSpec& spec, const ColourMap& palette, Section& section) {
    auto images = render_plot(spec, palette, plot_dir.string(), options.formats);
    result.plots.insert(result.plots.end(), images.begin(), images.end());
    section.figures.push_back({spec.title, sanitize_filename(spec.name)});
  };
  auto draw = [&](const PlotSpec& spec, Section& section) { draw_with(spec, colours, section); };

  // ---- scaling metrics: plot, pivot table, fits, crossovers
  std::map<std::string, std::vector<MetricRow>> rows_by_metric;
  for (const auto& metric : metrics()) {
    auto rows = load_metric(database, metric, options.filter, points);
    bool any_ok = false;
    for (const auto& row : rows) any_ok |= row.status == "ok" && std::isfinite(row.value) && (metric.scales_with_length || row.value > 0);
    if (!any_ok) continue;
    rows_by_metric[metric.name] = rows;
    const Table table = pivot_metric(rows, metric, true);
    write_table(table, metric.name);
    if (!metric.scales_with_length) {
      scaling.tables.push_back({table, metric.name});
      continue;
    }
    draw(scaling_plot(metric, rows), scaling);
    scaling.tables.push_back({table, metric.name});
    auto fits = fit_metric(metric, rows);
    result.fits.insert(result.fits.end(), fits.begin(), fits.end());
    auto crossings = crossovers_of_metric(metric, rows);
    result.crossovers.insert(result.crossovers.end(), crossings.begin(), crossings.end());
  }
  if (rows_by_metric.empty() && points.empty())
    findings.paragraphs.push_back("The database holds no points" +
                                  std::string(options.filter.empty() ? "." : " matching the filter."));

  // ---- findings: exponents, crossovers, best per length, failures
  // Forward latency repeats what forward + backward latency says; it is named only without the latter.
  const bool have_training_latency = rows_by_metric.count("fwd_bwd_ms") > 0;
  auto headline = [&](const std::string& name) {
    return name == "fwd_bwd_ms" || (name == "fwd_ms" && !have_training_latency) || name == "decode_ms" ||
           name == "peak_memory" || name == "state_bytes";
  };
  // An exponent is a finding only when its bootstrap interval pins it down; the others are named
  // as not supported, with their interval.
  std::string unsupported;
  for (const auto& metric : metrics()) {
    if (!headline(metric.name)) continue;
    std::string line;
    for (const auto& record : result.fits) {
      if (record.metric != &metric) continue;
      const std::string range = "N " + format_length(record.fit.n_min) + "–" + format_length(record.fit.n_max);
      if (exponent_supported(record.fit))
        line += (line.empty() ? "" : "; ") + record.label + " ∝ N^" + exponent_text(record.fit.exponent) + " (95% CI " +
                interval_text(record.fit) + ", " + range + ")";
      else
        unsupported += (unsupported.empty() ? "" : "; ") + record.label + " " + lowercase_first(metric.title) +
                       " (95% CI " + interval_text(record.fit) + ")";
    }
    if (!line.empty()) findings.paragraphs.push_back("- " + metric.title + ": " + line + ".");
  }
  if (!unsupported.empty())
    findings.paragraphs.push_back("- No exponent is given where its 95% interval is wider than " +
                                  exponent_text(kMaxExponentInterval) + ": " + unsupported + ".");
  // Many configurations cross many times: the findings name the first few, the table has all.
  constexpr size_t kCrossoversInFindings = 12;
  size_t crossovers_listed = 0, crossovers_left = 0;
  for (const auto& record : result.crossovers) {
    if (!headline(record.metric->name) || record.metric->name == "state_bytes") continue;
    if (crossovers_listed == kCrossoversInFindings) {
      ++crossovers_left;
      continue;
    }
    ++crossovers_listed;
    findings.paragraphs.push_back("- " + record.crossover.better_label + " " +
                                  verb_phrase(*record.metric, record.crossover.worse_label) + " at N ≈ " +
                                  format_length(record.crossover.seq_len) + " (" + lowercase_first(record.metric->title) + ").");
  }
  if (crossovers_left > 0)
    findings.paragraphs.push_back("- … and " + std::to_string(crossovers_left) +
                                  " more crossovers: see crossovers.md (all metrics).");
  for (const char* name : {"fwd_bwd_ms", "fwd_ms"}) {
    auto found = rows_by_metric.find(name);
    if (found == rows_by_metric.end()) continue;
    const Metric& metric = metric_by_name(name);
    std::map<int64_t, std::vector<const MetricRow*>> by_length;  // ok rows above resolution
    std::map<std::string, std::vector<std::string>> failures;    // label -> "OOM at 32k"
    const auto resolved = resolved_rows(metric, found->second);
    for (const auto& row : found->second)
      if (row.status != "ok")
        failures[row.label].push_back(status_caption(row.status) + " at N = " + format_length(static_cast<double>(row.seq_len)));
    for (const auto& row : resolved) by_length[row.seq_len].push_back(&row);
    // The fastest at a length is named only when it beats the runner-up beyond noise.
    std::string line, ties;
    for (auto& [n, list] : by_length) {
      std::sort(list.begin(), list.end(), [](const MetricRow* a, const MetricRow* b) { return a->value < b->value; });
      const std::string length = format_length(static_cast<double>(n));
      if (list.size() == 1 || better_beyond_noise(metric, *list[0], *list[1]))
        line += (line.empty() ? "" : "; ") + length + ": " + list[0]->label + " (" + format_number(list[0]->value) + " ms)";
      else
        ties += (ties.empty() ? "" : "; ") + length + ": " + list[0]->label + " and " + list[1]->label;
    }
    if (!line.empty())
      findings.paragraphs.push_back("- Fastest configuration per length (" + lowercase_first(metric.title) + "): " + line + ".");
    if (!ties.empty())
      findings.paragraphs.push_back("- No fastest configuration where the two fastest differ by less than their noise (" +
                                    lowercase_first(metric.title) + "): " + ties + ".");
    for (const auto& [label, list] : failures) {
      std::string joined;
      for (const auto& item : list) joined += (joined.empty() ? "" : ", ") + item;
      findings.paragraphs.push_back("- " + label + " failed (" + lowercase_first(metric.title) + "): " + joined + ".");
    }
    break;  // the first of fwd_bwd_ms / fwd_ms that exists
  }

  // Measurements a reader should not lean on.
  for (const auto& metric : metrics()) {
    const auto found = rows_by_metric.find(metric.name);
    if (found == rows_by_metric.end() || !headline(metric.name)) continue;
    for (const auto& note : measurement_quality_notes(metric, found->second)) findings.paragraphs.push_back(note);
  }

  for (const auto& point : points)
    if (point.status == "failed")
      findings.paragraphs.push_back("- " + point.label + ": the point failed" +
                                    (point.error.empty() ? std::string(".") : ": " + point.error));

  if (!result.fits.empty()) {
    fit_section.paragraphs.push_back(
        "Exponent: least-squares slope of log(metric) against log(N) over the upper half of each configuration's measured "
        "lengths (at least 4 points; fewer than 4 measured lengths give no fit), with a 95% bootstrap interval (lengths "
        "and timed repeats resampled). Failed sizes and values below the instrument's resolution are not fitted. "
        "Crossovers: curves interpolated linearly in log-log between measured points, counted only where the curves "
        "differ beyond their noise on both sides.");
    const Table fits = fits_table(result.fits);
    for (TableFormat format : {TableFormat::markdown, TableFormat::latex, TableFormat::csv}) {
      const fs::path path = out_dir / (std::string("fits.") + extension(format));
      write_text(path, render(fits, format));
      result.tables.push_back(path.string());
    }
    fit_section.tables.push_back({fits, ""});
  }
  if (!result.crossovers.empty()) {
    const Table crossings = crossovers_table(result.crossovers);
    for (TableFormat format : {TableFormat::markdown, TableFormat::csv}) {
      const fs::path path = out_dir / (std::string("crossovers.") + extension(format));
      write_text(path, render(crossings, format));
      result.tables.push_back(path.string());
    }
    fit_section.tables.push_back({crossings, ""});
  }

  // ---- training curves
  Section training{"Training", {}, {}, {}};
  const auto train = load_train_log(database, options.filter, points);
  const auto evaluations = load_evaluations(database, options.filter, points);
  if (!train.empty()) {
    std::map<std::string, PlotCurve> by_tokens, by_flops;
    for (const auto& row : train) {
      if (!std::isfinite(row.loss)) continue;
      by_tokens[row.label].label = row.label;
      by_flops[row.label].label = row.label;
      if (row.tokens > 0) by_tokens[row.label].points.emplace_back(static_cast<double>(row.tokens), row.loss);
      if (row.flops > 0) by_flops[row.label].points.emplace_back(row.flops, row.loss);
    }
    for (auto* curves : {&by_tokens, &by_flops}) {
      PlotSpec spec;
      const bool tokens = curves == &by_tokens;
      spec.name = tokens ? "loss_vs_tokens" : "loss_vs_flops";
      spec.title = tokens ? "Training loss vs tokens" : "Training loss vs training FLOPs";
      spec.x_label = tokens ? "tokens seen" : "training FLOPs";
      spec.y_label = "training loss (nats/token)";
      spec.log_y = false;
      spec.length_axis = false;
      spec.style = PlotSpec::Style::lines;
      for (auto& [label, curve] : *curves)
        if (!curve.points.empty()) spec.curves.push_back(curve);
      if (!spec.curves.empty()) draw(spec, training);
    }
    const Table summary = training_summary(train, evaluations);
    write_table(summary, "training_summary");
    training.tables.push_back({summary, "training_summary"});
  }

  // ---- evaluations: accuracy vs context length, loss by position, summary
  Section evaluation{"Evaluations", {}, {}, {}};
  if (!evaluations.empty()) {
    std::map<std::string, int64_t> last_step;
    for (const auto& row : evaluations) last_step[row.label + "\n" + row.task + "\n" + row.metric] =
        std::max(last_step[row.label + "\n" + row.task + "\n" + row.metric], row.step);
    auto is_last = [&](const EvaluationRow& row) { return row.step == last_step[row.label + "\n" + row.task + "\n" + row.metric]; };
    std::map<std::string, std::map<std::string, PlotCurve>> accuracy;  // task -> label -> curve
    std::map<std::string, std::map<std::string, PlotCurve>> by_position;  // task -> label -> curve
    for (const auto& row : evaluations) {
      if (!is_last(row)) continue;
      if (row.metric == "accuracy" && row.seq_len > 0) {
        auto& curve = accuracy[row.task][row.label];
        curve.label = row.label;
        curve.points.emplace_back(static_cast<double>(row.seq_len), row.value);
      } else if (row.metric == "loss_bucket" && row.bucket >= 0) {
        auto& curve = by_position[row.task][row.label];
        curve.label = row.label;
        curve.points.emplace_back(static_cast<double>(row.bucket), row.value);
      }
    }
    for (auto& [task, curves] : accuracy) {
      PlotSpec spec;
      spec.name = "accuracy_vs_context_" + task;
      spec.title = task + ": accuracy vs context length";
      spec.x_label = "context length (tokens)";
      spec.y_label = "accuracy (fraction correct)";
      spec.log_y = false;
      for (auto& [label, curve] : curves) {
        std::sort(curve.points.begin(), curve.points.end());
        spec.curves.push_back(curve);
      }
      draw(spec, evaluation);
    }
    for (auto& [task, curves] : by_position) {
      PlotSpec spec;
      spec.name = "loss_by_position_" + task;
      spec.title = (task == "text" ? std::string("Validation") : task) + " loss by position";
      spec.x_label = "position bucket start (tokens)";
      spec.y_label = "loss (nats/token)";
      spec.log_x = false;
      spec.log_y = false;
      spec.length_axis = false;
      for (auto& [label, curve] : curves) {
        std::sort(curve.points.begin(), curve.points.end());
        spec.curves.push_back(curve);
      }
      draw(spec, evaluation);
    }
    const Table summary = evaluation_summary(evaluations);
    if (!summary.columns.empty()) {
      write_table(summary, "evaluation_summary");
      evaluation.tables.push_back({summary, "evaluation_summary"});
    }
  }

  // ---- the best over a swept axis: Zoology's Figure 2 layout (reports/recall_figure.h)
  Section recall{"Recall: best over " + options.best_over, {}, {}, {}};
  if (!options.best_over.empty()) add_recall_section(database, options.filter, options.best_over, recall, draw_with, write_table);

  // ---- quality vs cost: one point per configuration
  Section quality{"Quality vs cost", {}, {}, {}};
  if (!train.empty() && !evaluations.empty()) {
    std::map<std::string, double> final_flops, throughput;
    std::map<std::string, std::vector<double>> speeds;
    std::map<std::string, int64_t> last;
    for (const auto& row : train) {
      if (row.step >= last[row.label]) last[row.label] = row.step, final_flops[row.label] = row.flops;
      if (std::isfinite(row.tokens_per_s) && row.tokens_per_s > 0) speeds[row.label].push_back(row.tokens_per_s);
    }
    for (auto& [label, list] : speeds) {
      std::sort(list.begin(), list.end());
      throughput[label] = list[list.size() / 2];
    }
    std::vector<std::tuple<std::string, std::string, std::string, std::string>> qualities = {
        {"text", "loss", "Validation loss", "validation loss (nats/token)"}};
    std::set<std::string> accuracy_tasks;
    for (const auto& row : evaluations)
      if (row.metric == "accuracy") accuracy_tasks.insert(row.task);
    for (const auto& task : accuracy_tasks)
      qualities.emplace_back(task, "accuracy", task + " accuracy", task + " accuracy (mean over context lengths)");
    // (titles: "Validation loss vs training FLOPs", "mqar accuracy vs training throughput (tokens/s)")
    for (const auto& [task, metric, name, axis] : qualities) {
      const auto values = final_evaluation(evaluations, task, metric);
      if (values.empty()) continue;
      for (const auto& [costs, cost_name, cost_axis] :
           {std::make_tuple(&final_flops, std::string("flops"), std::string("training FLOPs")),
            std::make_tuple(&throughput, std::string("throughput"), std::string("training throughput (tokens/s)"))}) {
        PlotSpec spec;
        spec.name = "quality_" + task + "_" + metric + "_vs_" + cost_name;
        spec.title = name + " vs " + cost_axis;
        spec.x_label = cost_axis;
        spec.y_label = axis;
        spec.log_y = false;
        spec.length_axis = false;
        spec.style = PlotSpec::Style::points;
        for (const auto& [label, value] : values) {
          auto cost = costs->find(label);
          if (cost != costs->end() && cost->second > 0) spec.curves.push_back({label, {{cost->second, value}}, {}});
        }
        if (!spec.curves.empty()) draw(spec, quality);
      }
    }
  }

  // ---- provenance
  Section provenance{"Provenance", {}, {}, {}};
  provenance.paragraphs.push_back("Database: " + options.db_path +
                                  (options.filter.empty() ? "" : "; filter: " + options.filter.text) + "; " +
                                  std::to_string(points.size()) + " configurations.");
  if (database.has_table("sweeps")) {
    Statement statement(database,
                        "SELECT COALESCE(name,''), COALESCE(device_name, device, ''), COALESCE(dtype,''), "
                        "COALESCE(torch_version,''), COALESCE(git_commit,''), COALESCE(started_at,'') FROM sweeps "
                        "ORDER BY sweep_id");
    while (statement.step())
      provenance.paragraphs.push_back("- sweep " + statement.text(0) + ": " + statement.text(1) + ", " + statement.text(2) +
                                      ", LibTorch " + statement.text(3) + ", commit " + statement.text(4) + ", started " +
                                      statement.text(5));
  }

  // Plots first, tables after: the figure sections give their tables to one "Tables" section
  // that follows them (with the fits and crossovers).
  Section tables{"Tables", {}, {}, {}};
  for (Section* section : {&scaling, &training, &evaluation, &quality}) {
    tables.tables.insert(tables.tables.end(), section->tables.begin(), section->tables.end());
    section->tables.clear();
  }
  for (Section* section : {&findings, &scaling, &training, &evaluation, &recall, &quality, &fit_section, &tables, &provenance})
    if (!section->paragraphs.empty() || !section->figures.empty() || !section->tables.empty())
      sections.push_back(*section);
  const std::string title = "mixlab report: " + fs::path(options.db_path).filename().string();
  const fs::path md = out_dir / "index.md", html = out_dir / "index.html";
  write_text(md, markdown_document(title, sections));
  write_text(html, html_document(title, sections, out_dir));
  result.index_md = md.string();
  result.index_html = html.string();
  if (store) store_fits(database, result.fits, result.crossovers);
  return result;
}

}  // namespace mixlab::reports
