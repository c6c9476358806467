// Plots and the whole report: every plot kind yields non-empty PNG/SVG/PDF files with gnuplot
// exiting 0, failed sizes are drawn and named, colours are stable, HTML is escaped and
// self-contained, file names are sanitised, and fits / crossovers reach the database.

#include "reports/plots.h"
#include "reports/report.h"
#include "reports/text.h"
#include "report_fixture.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace mixlab::reports {
namespace MIXLAB_UNITY_ID {

namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(ReportPlots, EveryPlotKindRendersInEveryFormat) {
  MIXLAB_REQUIRE_GNUPLOT();
  fixture::TempDir dir("plots");
  {
    fixture::Fixture db(dir.path("study.db"));
    fixture::fill_scaling_study(db);
  }
  ReportOptions options;
  options.db_path = dir.path("study.db");
  options.out_dir = dir.path("report");
  const ReportResult result = write_report(options);
  const char* expected[] = {"scaling_fwd_ms", "scaling_fwd_bwd_ms", "scaling_decode_ms", "scaling_tokens_per_s",
                            "scaling_fwd_bwd_tokens_per_s", "scaling_decode_tokens_per_s", "scaling_tflops",
                            "scaling_flops", "scaling_peak_memory", "scaling_state_bytes", "loss_vs_tokens",
                            "loss_vs_flops", "accuracy_vs_context_mqar", "loss_by_position_text",
                            "quality_text_loss_vs_flops", "quality_text_loss_vs_throughput",
                            "quality_mqar_accuracy_vs_throughput"};
  for (const char* stem : expected)
    for (const char* format : {"png", "svg", "pdf"}) {
      const fs::path image = fs::path(options.out_dir) / "plots" / (std::string(stem) + "." + format);
      ASSERT_TRUE(fs::exists(image)) << image;
      EXPECT_GT(fs::file_size(image), 1000u) << image;
    }
  EXPECT_EQ(slurp(options.out_dir + "/plots/scaling_fwd_ms.png").substr(1, 3), "PNG");
  EXPECT_EQ(slurp(options.out_dir + "/plots/scaling_fwd_ms.pdf").substr(0, 4), "%PDF");
  for (const char* table : {"fwd_bwd_ms.md", "fwd_bwd_ms.tex", "fwd_bwd_ms.csv", "params.csv", "training_summary.tex",
                            "evaluation_summary.md"})
    EXPECT_TRUE(fs::exists(fs::path(options.out_dir) / "tables" / table)) << table;

  // Failed sizes: full attention's OOM at 8192 is in the data and the legend, not dropped.
  const std::string failed = slurp(options.out_dir + "/plots/scaling_fwd_bwd_ms_failed.dat");
  EXPECT_NE(failed.find("# oom"), std::string::npos);
  const std::string script = slurp(options.out_dir + "/plots/scaling_fwd_bwd_ms.gp");
  EXPECT_NE(script.find("title \"OOM\""), std::string::npos);
  EXPECT_NE(script.find("using 1:(y_top)"), std::string::npos);
  EXPECT_NE(slurp(options.out_dir + "/plots/scaling_decode_ms.gp").find("title \"time budget\""), std::string::npos);

  // One colour per configuration, the same in every plot (assigned by sorted label).
  const ColourMap colours({"swa W=128", "full attention", "scout-swa S=64"});
  for (const char* stem : {"scaling_fwd_ms", "loss_vs_tokens", "accuracy_vs_context_mqar"}) {
    const std::string gp = slurp(options.out_dir + "/plots/" + stem + ".gp");
    const auto line = gp.find("title \"swa W=128\"");
    ASSERT_NE(line, std::string::npos) << stem;
    const auto colour_at = gp.rfind("lc rgb '", line);
    EXPECT_EQ(gp.substr(colour_at + 8, 7), colours.colour("swa W=128")) << stem;
  }
  EXPECT_EQ(colours.colour("full attention"), "#0072B2");

  // Findings: exponents and the analytic crossings (900, 2500 and (0.05/6e-4)² ≈ 6944).
  const std::string md = slurp(result.index_md);
  EXPECT_NE(md.find("scout-swa S=64 becomes faster than full attention at N ≈ 900"), std::string::npos) << md;
  EXPECT_NE(md.find("swa W=128 becomes faster than full attention at N ≈ 2.5k"), std::string::npos);
  EXPECT_NE(md.find("swa W=128 becomes faster than scout-swa S=64 at N ≈ 6.9k"), std::string::npos);
  EXPECT_NE(md.find("full attention failed (forward + backward latency): OOM at N = 8k"), std::string::npos);
  bool full_fitted = false;
  for (const auto& record : result.fits)
    if (record.label == "full attention" && record.metric->name == "fwd_bwd_ms") {
      full_fitted = true;
      EXPECT_NEAR(record.fit.exponent, 2.0, 1e-9);
      EXPECT_EQ(record.fit.n_max, 4096);  // the OOM size is not fitted
    }
  EXPECT_TRUE(full_fitted);

  // The database now holds the fits and crossovers.
  Database database(options.db_path, false);
  Statement fits(database, "SELECT exponent FROM fits WHERE db_label = 'scout-swa S=64' AND phase = 'forward_backward' "
                           "AND metric = 'median_ms'");
  ASSERT_TRUE(fits.step());
  EXPECT_NEAR(fits.real(0), 1.5, 1e-9);
  Statement crossing(database, "SELECT seq_len FROM crossovers WHERE faster_label = 'scout-swa S=64' AND "
                               "slower_label = 'full attention' AND phase = 'forward_backward' AND metric = 'median_ms'");
  ASSERT_TRUE(crossing.step());
  EXPECT_NEAR(crossing.real(0), 900.0, 1e-6);
  EXPECT_FALSE(crossing.step());
}

TEST(ReportPlots, RerunReplacesStoredFitsAndFilterRestrictsTheReport) {
  MIXLAB_REQUIRE_GNUPLOT();
  fixture::TempDir dir("rerun");
  {
    fixture::Fixture db(dir.path("study.db"));
    fixture::fill_scaling_study(db);
  }
  ReportOptions options;
  options.db_path = dir.path("study.db");
  options.out_dir = dir.path("a");
  options.formats = {"png"};
  write_report(options);
  write_report(options);
  options.out_dir = dir.path("b");
  options.filter = parse_filter("label in ('swa W=128', 'scout-swa S=64')");
  const ReportResult filtered = write_report(options);
  for (const auto& record : filtered.fits) EXPECT_NE(record.label, "full attention");
  Database database(options.db_path, false);
  Statement count(database, "SELECT COUNT(*) FROM fits WHERE db_label = 'full attention' AND metric = 'median_ms' "
                            "AND phase = 'forward'");
  ASSERT_TRUE(count.step());
  EXPECT_EQ(count.integer(0), 1);
}

TEST(ReportPlots, DatabaseWithOnlyFailuresStillReports) {
  MIXLAB_REQUIRE_GNUPLOT();
  fixture::TempDir dir("failed");
  {
    fixture::Fixture db(dir.path("f.db"));
    db.add_point("ok", "conv K=4", "conv,mlp");
    db.add_point("bad", "full attention", "attention,mlp");
    for (int64_t n : {128, 256, 512}) {
      db.add_measurement("ok", "forward", n, "ok", 0.01 * static_cast<double>(n));
      db.add_measurement("bad", "forward", n, n == 128 ? "nonfinite" : "oom", 0);
    }
  }
  ReportOptions options;
  options.db_path = dir.path("f.db");
  options.out_dir = dir.path("report");
  const ReportResult result = write_report(options);
  const std::string script = slurp(options.out_dir + "/plots/scaling_fwd_ms.gp");
  EXPECT_NE(script.find("keyentry"), std::string::npos);
  EXPECT_NE(script.find("full attention (no measured point)"), std::string::npos);
  EXPECT_NE(script.find("title \"non-finite\""), std::string::npos);
  EXPECT_NE(script.find("title \"OOM\""), std::string::npos);
  EXPECT_GT(fs::file_size(options.out_dir + "/plots/scaling_fwd_ms.png"), 1000u);
  EXPECT_NE(slurp(result.index_md).find("full attention failed (forward latency): non-finite at N = 128, OOM at N = 256"),
            std::string::npos);
  EXPECT_NE(slurp(options.out_dir + "/tables/fwd_ms.md").find("| full attention | non-finite | OOM | OOM |"),
            std::string::npos);
}

// What gnuplot itself reads for `'FILE' index K using 1:2`, through `set table` (the reference:
// gnuplot's own block counting, not ours).
std::vector<std::pair<double, double>> gnuplot_reads(const fs::path& dir, const std::string& file, int index) {
  const fs::path script = dir / "read_back.gp", table = dir / "read_back.txt";
  std::ofstream(script) << "set table '" << table.string() << "'\nplot '" << (dir / file).string() << "' index "
                        << index << " using 1:2 with points\nunset table\n";
  EXPECT_EQ(std::system(("gnuplot " + script.string() + " 2>/dev/null").c_str()), 0);
  std::vector<std::pair<double, double>> points;
  std::istringstream lines(slurp(table.string()));
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    double x, y;
    if (fields >> x >> y) points.emplace_back(x, y);
  }
  return points;
}

// Configurations with no measured point (empty, or every size failed) sit between and before
// configurations with data: each drawn curve must still carry its own points, every
// configuration must be named in the legend, and gnuplot must print no warning.
TEST(ReportPlots, EveryCurveUnderItsOwnLabelWhateverIsMissing) {
  MIXLAB_REQUIRE_GNUPLOT();
  fixture::TempDir dir("labels");
  PlotSpec spec;
  spec.name = "mixed";
  spec.title = "mixed";
  spec.x_label = "N";
  spec.y_label = "ms";
  spec.curves = {{"a-empty", {}, {}},
                 {"b-two", {{256, 1.0}, {512, 2.0}}, {}},
                 {"c-all-failed", {}, {{256, "time_budget"}, {512, "oom"}}},
                 {"d-single", {{512, 7.0}}, {{1024, "oom"}}},
                 {"e-three", {{256, 3.0}, {512, 5.0}, {1024, 9.0}}, {}}};
  std::vector<std::string> labels;
  for (const auto& curve : spec.curves) labels.push_back(curve.label);
  const ColourMap colours(labels);
  render_plot(spec, colours, dir.path("out"), {"png"});
  EXPECT_FALSE(fs::exists(dir.path("out/mixed.gnuplot.log"))) << slurp(dir.path("out/mixed.gnuplot.log"));
  const std::string script = slurp(dir.path("out/mixed.gp"));
  std::map<std::string, const PlotCurve*> by_label;
  for (const auto& curve : spec.curves) by_label[curve.label] = &curve;
  int drawn = 0;
  for (const auto& curve : spec.curves) {
    // gnuplot_quote writes double-quoted strings.
    const auto title = script.find("title \"" + curve.label + (curve.points.empty() ? " (no measured point)\"" : "\""));
    ASSERT_NE(title, std::string::npos) << curve.label << " missing from the legend";
    if (curve.points.empty()) continue;
    // The clause that carries this title reads `index K`.
    const auto clause = script.rfind("index ", title);
    ASSERT_NE(clause, std::string::npos);
    const int index = std::stoi(script.substr(clause + 6));
    EXPECT_EQ(gnuplot_reads(dir.path("out"), "mixed.dat", index), curve.points) << curve.label;
    ++drawn;
  }
  EXPECT_EQ(drawn, 3);
}

TEST(ReportPlots, HtmlIsEscapedAndSelfContainedAndFileNamesAreSanitised) {
  MIXLAB_REQUIRE_GNUPLOT();
  fixture::TempDir dir("html");
  const std::string evil = "<script>alert('x')</script> & \"q\"";
  {
    fixture::Fixture db(dir.path("h.db"));
    db.add_point("p", evil, "attention");
    for (int64_t n : {64, 128, 256}) db.add_measurement("p", "forward", n, "ok", 1e-3 * static_cast<double>(n * n));
    db.add_evaluation("p", 1, "../../etc/passwd", "accuracy", 0.5, 64);
    db.add_evaluation("p", 1, "../../etc/passwd", "accuracy", 0.25, 128);
  }
  ReportOptions options;
  options.db_path = dir.path("h.db");
  options.out_dir = dir.path("report");
  options.formats = {"png", "svg"};
  const ReportResult result = write_report(options);
  const std::string html = slurp(result.index_html);
  EXPECT_EQ(html.find("<script>"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"), std::string::npos);
  EXPECT_NE(html.find("src=\"data:image/png;base64,iVBORw0KGgo"), std::string::npos);  // PNG signature, base64
  EXPECT_EQ(html.find("src=\"plots/"), std::string::npos);  // nothing linked from outside the file
  // The task name from the database became a safe file name inside plots/.
  EXPECT_TRUE(fs::exists(options.out_dir + "/plots/accuracy_vs_context_.._.._etc_passwd.png"));
  for (const auto& entry : fs::recursive_directory_iterator(dir.path()))
    EXPECT_EQ(entry.path().string().find(dir.path()), 0u);
  // Without PNGs the page inlines the SVGs instead (still one self-contained file).
  options.out_dir = dir.path("svg_only");
  options.formats = {"svg"};
  const std::string svg_html = slurp(write_report(options).index_html);
  EXPECT_NE(svg_html.find("<figure><svg"), std::string::npos);
  EXPECT_EQ(svg_html.find("<?xml"), std::string::npos);
  EXPECT_EQ(svg_html.find("<script>"), std::string::npos);  // gnuplot escapes text in its SVG
  EXPECT_EQ(sanitize_filename("scout-swa S=64/../x"), "scout-swa_S_64_.._x");
  EXPECT_EQ(sanitize_filename("../../etc"), "_.._etc");
  EXPECT_EQ(sanitize_filename(""), "unnamed");
  EXPECT_EQ(sanitize_filename("ünïcode name"), "_n_code_name");
  EXPECT_EQ(gnuplot_quote("it's"), "\"it's\"");
  EXPECT_EQ(gnuplot_quote("'a \"b\" \\ c\nd"), "\"'a \\\"b\\\" \\\\ c d\"");
}

// A label that starts with a quote broke gnuplot (no report, exit 2); one with a newline or HTML
// broke the Markdown list of findings.
TEST(ReportPlots, HostileLabelsStillGiveAReport) {
  MIXLAB_REQUIRE_GNUPLOT();
  fixture::TempDir dir("hostile");
  const std::string label = "'quoted\nlabel <b>bold</b> \x1b[31mred";
  {
    fixture::Fixture db(dir.path("h.db"));
    db.add_point("p", label, "attention");
    db.add_point("q", "plain", "attention");
    for (int64_t n : {64, 128, 256}) {
      db.add_measurement("p", "forward", n, "ok", 1e-3 * static_cast<double>(n * n));
      db.add_measurement("q", "forward", n, "ok", 2e-3 * static_cast<double>(n * n));
    }
    db.add_point("f", "'broken\n- not a finding", "attention");
    db.add_measurement("f", "forward", 64, "error", 0);
  }
  ReportOptions options;
  options.db_path = dir.path("h.db");
  options.out_dir = dir.path("report");
  options.formats = {"png"};
  const ReportResult result = write_report(options);
  EXPECT_GT(fs::file_size(options.out_dir + "/plots/scaling_fwd_ms.png"), 1000u);
  const std::string md = slurp(result.index_md);
  EXPECT_EQ(md.find("<b>"), std::string::npos) << md;
  EXPECT_EQ(md.find("\n- not a finding"), std::string::npos) << md;
  EXPECT_EQ(md.find('\x1b'), std::string::npos);
  EXPECT_NE(md.find("'broken - not a finding"), std::string::npos) << md;
}

#ifdef MIXLAB_BINARY
int run(const std::string& command) { return WEXITSTATUS(std::system(command.c_str())); }

TEST(ReportCommand, TableAndPlotSubcommands) {
  MIXLAB_REQUIRE_GNUPLOT();
  fixture::TempDir dir("cli");
  {
    fixture::Fixture db(dir.path("c.db"));
    fixture::fill_scaling_study(db);
  }
  const std::string mixlab = MIXLAB_BINARY, db = dir.path("c.db");
  ASSERT_EQ(run(mixlab + " report table --db " + db + " --metric fwd_bwd_ms --format latex --out " + dir.path("t.tex")), 0);
  EXPECT_NE(slurp(dir.path("t.tex")).find("\\toprule"), std::string::npos);
  ASSERT_EQ(run(mixlab + " report plot --db " + db + " --metric tokens_per_s --where \"mixer in ('swa','checkpoint_attention')\" --out " +
                dir.path("p") + " > " + dir.path("plot.txt")),
            0);
  EXPECT_GT(fs::file_size(dir.path("p/scaling_tokens_per_s.png")), 1000u);
  EXPECT_EQ(slurp(dir.path("p/scaling_tokens_per_s.gp")).find("full attention"), std::string::npos);
  EXPECT_EQ(run(mixlab + " report plot --db " + db + " --metric tokens_per_s --where \"label = 'x' or 1=1\" 2> " +
                dir.path("err.txt")),
            2);
  EXPECT_NE(slurp(dir.path("err.txt")).find("--where"), std::string::npos);
  EXPECT_EQ(run(mixlab + " report table --db " + db + " --metric nope 2> " + dir.path("err.txt")), 2);
  ASSERT_EQ(run(mixlab + " report --db " + db + " --out " + dir.path("r") + " > " + dir.path("out.txt")), 0);
  EXPECT_TRUE(fs::exists(dir.path("r/index.html")));
}
#endif

}  // namespace mixlab::reports

}  // namespace
