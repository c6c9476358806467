// "Best over an axis" (reports/best_over.h) and Zoology's Figure 2 layout (reports/
// recall_figure.h) on a fixture database whose best values are known by construction.

#include "reports/best_over.h"
#include "reports/recall_figure.h"
#include "reports/report.h"
#include "tests/report_fixture.h"

#include <gtest/gtest.h>

#include <cmath>

namespace mixlab::reports {
namespace MIXLAB_UNITY_ID {

using nlohmann::json;

json point_config(const std::string& name, const json& pattern, int64_t d_model, double lr, int64_t seq_len,
                  int64_t pairs) {
  return {{"model", {{"name", name}, {"d_model", d_model}, {"n_layers", 2}, {"pattern", pattern}}},
          {"train", {{"lr", lr}, {"seq_len", seq_len}, {"data", {{"source", "mqar"}, {"num_kv_pairs", pairs}}}}}};
}

TEST(ReportBestOver, TakesTheMaximumOverTheAxisWithinEachConfiguration) {
  const json swa = json::array({json{{"mixer", "swa"}, {"window", 8}}});
  std::vector<AxisCandidate> candidates = {
      {"a", point_config("swa", swa, 64, 1e-4, 64, 4), 0.40},
      {"b", point_config("swa", swa, 64, 1e-3, 64, 4), 0.75},
      {"c", point_config("swa", swa, 64, 1e-2, 64, 4), 0.75},  // a tie: the first stays
      {"d", point_config("swa", swa, 128, 1e-4, 64, 4), std::nan("")},
      {"e", point_config("swa", swa, 128, 1e-3, 64, 4), 0.9},
      {"f", point_config("swa", swa, 256, 1e-3, 64, 4), std::nan(""), false},  // never trained
  };
  candidates[1].finished = false;  // b interrupted: its value is still the group's best
  const auto best = best_over_axis(candidates, "train.lr");
  ASSERT_EQ(best.size(), 3u);
  EXPECT_EQ(best[0].point_id, "b");
  EXPECT_DOUBLE_EQ(best[0].value, 0.75);
  EXPECT_DOUBLE_EQ(best[0].axis_value.get<double>(), 1e-3);
  EXPECT_EQ(best[0].candidates, 3);
  EXPECT_EQ(best[0].finished, 2);
  EXPECT_FALSE(best[0].config["train"].contains("lr")) << "the group's configuration has the axis removed";
  EXPECT_EQ(best[1].point_id, "e");
  EXPECT_EQ(best[1].candidates, 2);
  EXPECT_TRUE(std::isnan(best[2].value));
  EXPECT_EQ(best[2].finished, 0);
  EXPECT_EQ(best[2].point_id, "");
  // Over another axis the groups are others: d_model varies inside them.
  const auto by_width = best_over_axis(candidates, "model.d_model");
  EXPECT_EQ(by_width.size(), 3u);  // one per learning rate
  EXPECT_THROW(best_over_axis(candidates, "train.momentum"), ReportError);
}

class ReportRecall : public ::testing::Test {
 protected:
  void SetUp() override {
    fixture.exec("ALTER TABLE evaluations ADD COLUMN state_bytes REAL");
    const json attention = json::array({"attention"});
    // attention at 64 / 4 pairs: d=64 best 0.98 (lr 1e-3); d=128 best 0.99 (lr 1e-4; 1e-3 never evaluated)
    add("att64a", point_config("attention", attention, 64, 1e-4, 64, 4), {{0.99, 1}, {0.50, 2}}, 2 * 64 * 64 * 2 * 4);
    add("att64b", point_config("attention", attention, 64, 1e-3, 64, 4), {{0.98, 3}}, 2 * 64 * 64 * 2 * 4);
    add("att128a", point_config("attention", attention, 128, 1e-4, 64, 4), {{0.99, 2}}, 2 * 64 * 128 * 2 * 4);
    add("att128b", point_config("attention", attention, 128, 1e-3, 64, 4), {}, 0, "pending");
    // fft_conv at 512 / 64 pairs: best 0.20 at d=64 (above Hyena's 0.18), 0.15 at d=128
    const json conv = json::array({json{{"mixer", "fft_conv"}, {"max_len", 512}}});
    add("conv64a", point_config("fft_conv", conv, 64, 1e-4, 512, 64), {{0.10, 5}}, 2 * 512 * 64 * 4);
    add("conv64b", point_config("fft_conv", conv, 64, 1e-3, 512, 64), {{0.20, 5}}, 2 * 512 * 64 * 4);
    add("conv128", point_config("fft_conv", conv, 128, 1e-3, 512, 64), {{0.15, 5}}, 2 * 512 * 128 * 4);
    // linear_attention at 512 / 64, d=64: 0.05, RWKV's published 0.02
    add("lin64", point_config("linear_attention", json::array({"linear_attention"}), 64, 1e-3, 512, 64), {{0.05, 4}},
        2 * 64 * 64 * 4);
    // Another task length of eval.tasks with a higher accuracy: not the training task's figure.
    fixture.exec("INSERT INTO evaluations VALUES ('lin64', 4, 'mqar', 'accuracy', 0.9, 1024, -1, '{}', 1)");
  }

  // A point with its accuracy evaluations (value, step) at its own task and length.
  void add(const std::string& id, const json& config, const std::vector<std::pair<double, int64_t>>& evaluations,
           double state_bytes, const std::string& status = "done") {
    fixture.add_point(id, id, config["model"]["pattern"].dump(), 0, status);
    sqlite3_stmt* update = nullptr;
    sqlite3_prepare_v2(fixture.db(), "UPDATE points SET config_json = ? WHERE point_id = ?", -1, &update, nullptr);
    const std::string text = config.dump();
    sqlite3_bind_text(update, 1, text.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(update, 2, id.c_str(), -1, SQLITE_TRANSIENT);
    ASSERT_EQ(sqlite3_step(update), SQLITE_DONE);
    sqlite3_finalize(update);
    for (const auto& [value, step] : evaluations) {
      fixture.add_evaluation(id, step, "mqar", "accuracy", value, config["train"]["seq_len"].get<int64_t>());
      fixture.exec("UPDATE evaluations SET state_bytes = " + std::to_string(state_bytes) + " WHERE point_id = '" + id + "'");
    }
  }

  fixture::TempDir dir{"report_recall"};
  fixture::Fixture fixture{dir.path("recall.db")};
};

TEST_F(ReportRecall, RowsAreTheBestLastAccuracyOfEachConfiguration) {
  Database database(fixture.path(), false);
  const auto rows = recall_rows(database, Filter{}, "train.lr");
  ASSERT_EQ(rows.size(), 5u);
  // Sorted by line, then length, then width.
  EXPECT_EQ(rows[0].line, "attention");
  EXPECT_EQ(rows[0].d_model, 64);
  EXPECT_DOUBLE_EQ(rows[0].accuracy, 0.98) << "0.99 at step 1 of att64a is not its last evaluation";
  EXPECT_EQ(rows[0].best_axis_value, "0.001");
  EXPECT_EQ(rows[0].candidates, 2);
  EXPECT_DOUBLE_EQ(rows[0].state_bytes, 2 * 64 * 64 * 2 * 4);
  EXPECT_EQ(rows[1].d_model, 128);
  EXPECT_DOUBLE_EQ(rows[1].accuracy, 0.99);
  EXPECT_EQ(rows[1].candidates, 2);
  EXPECT_EQ(rows[1].finished, 1) << "att128b is pending";
  EXPECT_EQ(rows[0].finished, 2);
  // The table says how many of the tried points are done, beside how many were tried.
  const Table table = recall_table(rows, "train.lr");
  ASSERT_EQ(table.columns.back(), "done");
  EXPECT_EQ(table.cells[1][table.columns.size() - 2].text, "2");
  EXPECT_EQ(table.cells[1][table.columns.size() - 1].text, "1");
  EXPECT_EQ(table.cells[0][table.columns.size() - 1].text, "2");
  EXPECT_EQ(rows[2].line, "fft_conv");
  EXPECT_DOUBLE_EQ(rows[2].accuracy, 0.20);
  EXPECT_EQ(rows[2].seq_len, 512);
  EXPECT_EQ(rows[2].pairs, 64);
  EXPECT_EQ(rows[4].line, "linear_attention");
  EXPECT_DOUBLE_EQ(rows[4].accuracy, 0.05) << "the 1024-token evaluation is another task's figure";

  const auto plots = recall_plots(rows, "train.lr");
  ASSERT_EQ(plots.size(), 4u);  // two panels (64 / 4, 512 / 64), each by width and by state
  EXPECT_EQ(plots[0].name, "recall_accuracy_vs_d_model_L64_K4");
  ASSERT_EQ(plots[0].curves.size(), 1u);
  EXPECT_EQ(plots[0].curves[0].points, (std::vector<std::pair<double, double>>{{64, 0.98}, {128, 0.99}}));
  EXPECT_EQ(plots[1].name, "recall_accuracy_vs_state_L64_K4");
  EXPECT_EQ(plots[2].name, "recall_accuracy_vs_d_model_L512_K64");
  EXPECT_EQ(plots[2].curves.size(), 2u);
}

// A database resumed under another train.execution or train.curve_every (neither is part of a
// point's id) holds points of one configuration with and without the settings: they are one row,
// not two.  (Session 23: the Zoology grid resumed with curve_every 25 showed attention at 128 / 8,
// d = 256 as two rows, 0.999 and 0.130.)
TEST_F(ReportRecall, TheExecutionModeAndCurveDensityDoNotSplitAConfiguration) {
  auto graphed = point_config("attention", json::array({"attention"}), 64, 1e-2, 64, 4);
  graphed["train"]["execution"] = "cuda_graph";
  graphed["train"]["curve_every"] = 25;
  add("att64c", graphed, {{0.995, 3}}, 2 * 64 * 64 * 2 * 4);
  Database database(fixture.path(), false);
  const auto rows = recall_rows(database, Filter{}, "train.lr");
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[0].d_model, 64);
  EXPECT_EQ(rows[0].candidates, 3);
  EXPECT_DOUBLE_EQ(rows[0].accuracy, 0.995);
  EXPECT_EQ(rows[0].best_axis_value, "0.01");
}

TEST_F(ReportRecall, PublishedValuesStandBesideMixlabsWithTheDifference) {
  Database database(fixture.path(), false);
  const Table table = published_comparison(recall_rows(database, Filter{}, "train.lr"));
  auto cell = [&](const std::string& architecture, const std::string& setting, const std::string& d_model, size_t column) {
    for (size_t r = 0; r < table.rows.size(); ++r)
      if (table.rows[r] == architecture && table.cells[r][1].text == setting && table.cells[r][2].text == d_model)
        return table.cells[r][column].text;
    return std::string("(no row)");
  };
  // attention at 64 / 4: the worst width is d=64 at 0.98 ≥ 0.97.
  EXPECT_EQ(cell("attention", "64 / 4 pairs", "every", 4), "0.98 (worst width, d=64)");
  EXPECT_EQ(cell("attention", "64 / 4 pairs", "every", 5), "holds");
  EXPECT_EQ(cell("attention", "128 / 8 pairs", "every", 4), "not run");
  // Hyena ≤ 0.18 at every width; mixlab's best width reaches 0.20.
  EXPECT_EQ(cell("Hyena (long convolution)", "512 / 64 pairs", "every", 0), "fft_conv");
  EXPECT_EQ(cell("Hyena (long convolution)", "512 / 64 pairs", "every", 5), "above by 0.02");
  // RWKV 0.02 at d=64 beside linear_attention's 0.05.
  EXPECT_EQ(cell("RWKV (fixed-state recurrence)", "512 / 64 pairs", "64", 3), "= 0.02");
  EXPECT_EQ(cell("RWKV (fixed-state recurrence)", "512 / 64 pairs", "64", 5), "+0.03");
  EXPECT_EQ(cell("RWKV (fixed-state recurrence)", "512 / 64 pairs", "512", 4), "not run");
}

TEST_F(ReportRecall, ReportWithBestOverDrawsTheFigureAndWritesTheTables) {
  MIXLAB_REQUIRE_GNUPLOT();
  ReportOptions options;
  options.db_path = fixture.path();
  options.out_dir = dir.path("out");
  options.best_over = "train.lr";
  options.formats = {"png"};
  write_report(options);
  const std::string page = fixture::slurp(dir.path("out/index.md"));
  EXPECT_NE(page.find("Recall: best over train.lr"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(dir.path("out/plots/recall_accuracy_vs_d_model_L512_K64.png")));
  EXPECT_TRUE(std::filesystem::exists(dir.path("out/plots/recall_accuracy_vs_state_L64_K4.png")));
  const std::string csv = fixture::slurp(dir.path("out/tables/recall_published.csv"));
  EXPECT_NE(csv.find("above by 0.02"), std::string::npos) << csv;
  // Integers stay integers in the best-over table (d_model 64 once printed as "64.0").
  const std::string best = fixture::slurp(dir.path("out/tables/recall_best_over.md"));
  EXPECT_NE(best.find("| 64 |"), std::string::npos) << best;
  EXPECT_EQ(best.find("| 64.0 |"), std::string::npos) << best;
}

}  // namespace mixlab::reports

}  // namespace
