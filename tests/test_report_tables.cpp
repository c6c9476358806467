// Tables from a fixture database: the exact Markdown, LaTeX (booktabs) and CSV text of a metric
// pivot with a failed size, transposition, escaping of labels, and the training / evaluation
// summaries.

#include "reports/queries.h"
#include "reports/tables.h"
#include "reports/text.h"
#include "report_fixture.h"

#include <gtest/gtest.h>

namespace mixlab::reports {
namespace MIXLAB_UNITY_ID {

class ReportTables : public ::testing::Test {
 protected:
  void SetUp() override {
    fixture::Fixture db(dir.path("t.db"));
    db.add_point("p1", "full attention", "attention,mlp", 1234567);
    db.add_point("p2", "swa W=128", "swa,mlp", 1000000);
    const double full[] = {1.5, 6.0, 0}, swa[] = {2.5, 5.0, 10.0};
    for (int i = 0; i < 3; ++i) {
      const int64_t n = 256 << i;
      db.add_measurement("p1", "forward_backward", n, i < 2 ? "ok" : "oom", full[i]);
      db.add_measurement("p2", "forward_backward", n, "ok", swa[i]);
    }
    for (int64_t step = 1; step <= 3; ++step) {
      db.add_train("p1", step, step * 1000, step * 2e9, 4.0 - static_cast<double>(step), 500.0 * static_cast<double>(step));
    }
    db.add_evaluation("p1", 3, "text", "loss", 1.25);
    db.add_evaluation("p1", 3, "mqar", "accuracy", 0.5, 64);
    db.add_evaluation("p1", 1, "mqar", "accuracy", 0.1, 64);  // an earlier step: not in the summary
  }
  std::vector<MetricRow> rows(const std::string& metric) {
    Database database(dir.path("t.db"), false);
    return load_metric(database, metric_by_name(metric), Filter{}, load_points(database, Filter{}));
  }
  fixture::TempDir dir{"tables"};
};

TEST_F(ReportTables, MarkdownPivotMarksFailuresAndBestValues) {
  const Table table = pivot_metric(rows("fwd_bwd_ms"), metric_by_name("fwd_bwd_ms"), true);
  EXPECT_EQ(render(table, TableFormat::markdown),
            "| configuration | 256 | 512 | 1024 |\n"
            "|---|---:|---:|---:|\n"
            "| full attention | **1.50** | 6.00 | OOM |\n"
            "| swa W=128 | 2.50 | **5.00** | **10.0** |\n");
}

// A metric kept in extra_json (the SCOUT paper's generation throughput, batch·N / wall time) is
// read from there; a row without the key is not a value.
TEST_F(ReportTables, GenerationThroughputIsReadFromExtraJson) {
  const std::string path = dir.path("generation.db");
  {
    fixture::Fixture db(path);
    db.add_point("p1", "qwen2", "attention,mlp");
    db.add_point("p2", "mamba", "mamba");
    db.add_measurement("p1", "decode", 2048, "ok", 3.0);
    db.add_measurement("p2", "decode", 2048, "ok", 4.0);
    db.exec("UPDATE measurements SET extra_json = '{\"generate_tokens_per_s\": 5659.25}' WHERE point_id = 'p1'");
  }
  Database database(path, false);
  const auto points = load_points(database, Filter{});
  const auto generation = load_metric(database, metric_by_name("generate_tokens_per_s"), Filter{}, points);
  ASSERT_EQ(generation.size(), 1u);
  EXPECT_EQ(generation[0].point_id, "p1");
  EXPECT_DOUBLE_EQ(generation[0].value, 5659.25);
  EXPECT_EQ(load_metric(database, metric_by_name("decode_tokens_per_s"), Filter{}, points).size(), 2u);  // a column
}

TEST_F(ReportTables, LatexPivotUsesBooktabs) {
  const Table table = pivot_metric(rows("fwd_bwd_ms"), metric_by_name("fwd_bwd_ms"), true);
  EXPECT_EQ(render(table, TableFormat::latex),
            "% needs \\usepackage{booktabs}\n"
            "\\begin{table}[t]\n\\centering\n"
            "\\caption{Forward + backward latency (ms)}\n"
            "\\begin{tabular}{lrrr}\n\\toprule\n"
            "configuration & 256 & 512 & 1024 \\\\\n\\midrule\n"
            "full attention & \\textbf{1.50} & 6.00 & OOM \\\\\n"
            "swa W=128 & 2.50 & \\textbf{5.00} & \\textbf{10.0} \\\\\n"
            "\\bottomrule\n\\end{tabular}\n\\end{table}\n");
}

TEST_F(ReportTables, CsvPivotKeepsRawValuesAndStatus) {
  const Table table = pivot_metric(rows("fwd_bwd_ms"), metric_by_name("fwd_bwd_ms"), true);
  EXPECT_EQ(render(table, TableFormat::csv),
            "configuration,256,512,1024\n"
            "full attention,1.5,6,oom\n"
            "swa W=128,2.5,5,10\n");
  // Throughput is derived from latency (batch 1): N / (ms / 1000), and higher is better.
  const Table throughput = pivot_metric(rows("fwd_bwd_tokens_per_s"), metric_by_name("fwd_bwd_tokens_per_s"), false);
  EXPECT_EQ(render(throughput, TableFormat::csv),
            "seq_len,full attention,swa W=128\n"
            "256,170667,102400\n"
            "512,85333.3,102400\n"
            "1024,oom,102400\n");
}

TEST_F(ReportTables, ParametersAreOneColumnPerConfiguration) {
  const Table table = pivot_metric(rows("params"), metric_by_name("params"), true);
  EXPECT_EQ(render(table, TableFormat::markdown),
            "| configuration | params |\n|---|---:|\n| full attention | 1.23 |\n| swa W=128 | **1.00** |\n");
}

TEST_F(ReportTables, LabelsAreEscapedPerFormat) {
  Table table;
  table.caption = "50% & more";
  table.corner = "configuration";
  table.columns = {"x"};
  table.csv_columns = {"x"};
  table.rows = {"a_b & c|d, \"e\""};
  table.cells = {{TableCell::value(1.0)}};
  EXPECT_NE(render(table, TableFormat::latex).find("a\\_b \\& c|d, \"e\" & 1.00 \\\\"), std::string::npos);
  EXPECT_NE(render(table, TableFormat::latex).find("\\caption{50\\% \\& more}"), std::string::npos);
  EXPECT_NE(render(table, TableFormat::markdown).find("| a\\_b & c\\|d, \"e\" | 1.00 |"), std::string::npos);
  EXPECT_NE(render(table, TableFormat::csv).find("\"a_b & c|d, \"\"e\"\"\",1\n"), std::string::npos);
  EXPECT_NE(render(table, TableFormat::html).find("<th>a_b &amp; c|d, &quot;e&quot;</th>"), std::string::npos);
}

TEST_F(ReportTables, TrainingAndEvaluationSummaries) {
  Database database(dir.path("t.db"), false);
  const auto points = load_points(database, Filter{});
  const auto train = load_train_log(database, Filter{}, points);
  const auto evaluations = load_evaluations(database, Filter{}, points);
  const Table training = training_summary(train, evaluations);
  EXPECT_EQ(render(training, TableFormat::csv),
            "configuration,steps,tokens,train_flops,final_loss,min_loss,median_tokens_per_s,val_loss\n"
            "full attention,3,3000,6e+09,1,1,1000,1.25\n");
  const Table evaluation = evaluation_summary(evaluations);
  EXPECT_EQ(render(evaluation, TableFormat::csv),
            "configuration,mqar_accuracy_64,text_loss\nfull attention,0.5,1.25\n");
}

TEST_F(ReportTables, UnknownMetricAndFormatNameTheValidOnes) {
  try {
    metric_by_name("latency");
    FAIL();
  } catch (const ReportError& error) {
    EXPECT_NE(std::string(error.what()).find("fwd_ms, fwd_bwd_ms, decode_ms, tokens_per_s"), std::string::npos);
  }
  EXPECT_THROW(parse_table_format("xlsx"), ReportError);
  EXPECT_EQ(parse_table_format("latex"), TableFormat::latex);
}

TEST(ReportText, NumbersLengthsAndBase64) {
  EXPECT_EQ(format_number(0.0123), "0.0123");
  EXPECT_EQ(format_number(123.4), "123");
  EXPECT_EQ(format_number(2.5e9), "2.50e+09");
  EXPECT_EQ(format_length(4096), "4k");
  EXPECT_EQ(format_length(512), "512");
  EXPECT_EQ(format_length(3100), "3.1k");
  // RFC 4648 §10 test vectors.
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
}

}  // namespace mixlab::reports

}  // namespace
