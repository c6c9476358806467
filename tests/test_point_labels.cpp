// Point labels (harness/point_labels.h): unique within a sweep, naming the settings that vary,
// a spec's own `label`, preset overrides, and the points table's hyperparameter columns.

#include "harness/config.h"
#include "harness/point_labels.h"
#include "harness/spec.h"
#include "harness/store.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

std::set<std::string> labels_of(const SweepSpec& spec) {
  std::set<std::string> labels;
  for (const auto& point : spec.points) labels.insert(point.label);
  return labels;
}

// The example of docs/sweeps.md ("The spec"), without its train section.
TEST(PointLabels, TheDocumentedExampleHasOneLabelPerPoint) {
  const json raw = json::parse(R"({
    "name": "quickstart",
    "base": {"model": {"preset": "transformer", "d_model": 64},
             "measure": {"seq_lens": {"from": 64, "to": 1024, "times": 2}, "phases": ["forward", "decode"]}},
    "grid": {"model.preset": ["transformer", "swa"], "measure.batch": [1, 8]},
    "zip": {"model.d_model": [256, 512], "model.n_heads": [4, 8]},
    "points": [{"model.n_layers": 2}, {"model": {"preset": "mamba"}}]})");
  const SweepSpec spec = expand_spec(raw, "sweeps.md", "cpu");
  ASSERT_EQ(spec.points.size(), 16u);
  EXPECT_EQ(labels_of(spec).size(), 16u);
  for (const auto& point : spec.points) EXPECT_EQ(point.label.find('['), std::string::npos) << point.label;
}

TEST(PointLabels, ShippedRecallSpecHasOneLabelPerPoint) {
  const SweepSpec spec = load_spec(std::string(MIXLAB_SOURCE_DIR) + "/experiments/recall.json", "cpu");
  ASSERT_EQ(spec.points.size(), 20u);
  EXPECT_EQ(labels_of(spec).size(), 20u);
  for (const auto& point : spec.points) EXPECT_EQ(point.label.find('['), std::string::npos) << point.label;
}

// A grid over the MLP width and d_model: six points, formerly all "attention".
TEST(PointLabels, VaryingSettingsAreNamed) {
  const json raw = json::parse(R"({
    "name": "widths",
    "base": {"model": {"vocab_size": 32, "d_model": 16, "n_heads": 2, "n_layers": 1, "pattern": ["attention", "mlp"]},
             "measure": {"seq_lens": [8], "phases": ["forward"]}},
    "grid": {"model.d_model": [16, 32, 64], "model.mixer_params.mlp.expand": [2, 4]}})");
  const SweepSpec spec = expand_spec(raw, "w.json", "cpu");
  ASSERT_EQ(spec.points.size(), 6u);
  EXPECT_EQ(labels_of(spec).size(), 6u);
  std::map<std::string, int> found;
  for (const auto& point : spec.points) found[point.label] += 1;
  EXPECT_EQ(found.count("attention d=64 mlp.expand=4"), 1u) << spec.points.front().label;
  EXPECT_EQ(found.count("attention d=16 mlp.expand=2"), 1u);
}

TEST(PointLabels, SpecLabelIsUsedAndIsNotPartOfTheId) {
  json raw = json::parse(R"({
    "name": "named",
    "base": {"model": {"vocab_size": 32, "d_model": 16, "n_heads": 2, "n_layers": 1, "pattern": ["attention", "mlp"]},
             "measure": {"seq_lens": [8], "phases": ["forward"]}},
    "points": [{"label": "baseline"}, {"label": "wide", "model.d_model": 32}]})");
  const SweepSpec spec = expand_spec(raw, "n.json", "cpu");
  ASSERT_EQ(spec.points.size(), 2u);
  EXPECT_EQ(spec.points[0].label, "baseline");
  EXPECT_EQ(spec.points[1].label, "wide");
  raw.erase("points");
  EXPECT_EQ(expand_spec(raw, "n.json", "cpu").points[0].id, spec.points[0].id);
  raw["points"] = json::parse(R"([{"label": 5}])");
  EXPECT_THROW(expand_spec(raw, "n.json", "cpu"), ConfigError);
}

TEST(PointLabels, PresetOverridesAreNamed) {
  const json raw = json::parse(R"({
    "name": "small", "base": {"model": {"preset": "transformer", "d_model": 64, "n_layers": 2},
                              "measure": {"seq_lens": [8], "phases": ["forward"]}}})");
  EXPECT_EQ(expand_spec(raw, "s.json", "cpu").points[0].label, "transformer d=64 L=2");
  const json plain = json::parse(R"({
    "name": "plain", "base": {"model": {"preset": "transformer"}, "measure": {"seq_lens": [8], "phases": ["forward"]}}})");
  EXPECT_EQ(expand_spec(plain, "s.json", "cpu").points[0].label, "transformer");
}

// The points table repeats the main hyperparameters as columns, also for an older database.
TEST(PointLabels, PointsTableCarriesHyperparameterColumns) {
  Store store(":memory:");
  const json config = json::parse(R"({"model": {"d_model": 64, "n_layers": 2, "n_heads": 4, "vocab_size": 256,
      "pattern": [{"mixer": "swa", "window": 128}, {"mixer": "mlp"}, {"mixer": "checkpoint_attention", "segment_size": 16}]},
      "train": {"data": {"source": "mqar"}}})");
  store.start_point({"p1", "s", "scout", "swa,mlp,checkpoint_attention", config.dump()}, store.begin_sweep({}));
  Statement q(store.handle(),
              "SELECT d_model, n_layers, n_heads, vocab_size, window, segment_size, d_state IS NULL, train_source "
              "FROM points WHERE point_id = 'p1'");
  ASSERT_TRUE(q.step());
  EXPECT_EQ(q.integer(0), 64);
  EXPECT_EQ(q.integer(1), 2);
  EXPECT_EQ(q.integer(2), 4);
  EXPECT_EQ(q.integer(3), 256);
  EXPECT_EQ(q.integer(4), 128);
  EXPECT_EQ(q.integer(5), 16);
  EXPECT_EQ(q.integer(6), 1);
  EXPECT_EQ(q.text(7), "mqar");
}

TEST(PointLabels, HyperparameterColumnsAreAddedToAnOlderDatabase) {
  const auto file = std::filesystem::temp_directory_path() / ("mixlab_old_points_" + std::to_string(::getpid()) + ".db");
  std::filesystem::remove(file);
  const json config = json::parse(R"({"model": {"d_model": 48, "pattern": [{"mixer": "mamba", "d_state": 8}]}})");
  {
    Store store(file.string());
    store.start_point({"old", "s", "mamba", "mamba", config.dump()}, store.begin_sweep({}));
    for (const char* column : {"d_model", "n_layers", "n_heads", "vocab_size", "window", "segment_size", "d_state",
                               "train_source"})
      store.execute(std::string("ALTER TABLE points DROP COLUMN ") + column);
  }
  Store reopened(file.string());
  Statement q(reopened.handle(), "SELECT d_model, d_state, window IS NULL FROM points WHERE point_id = 'old'");
  ASSERT_TRUE(q.step());
  EXPECT_EQ(q.integer(0), 48);
  EXPECT_EQ(q.integer(1), 8);
  EXPECT_EQ(q.integer(2), 1);
  std::filesystem::remove(file);
}

}  // namespace
}  // namespace mixlab
