// experiments/paper/zoology-mqar*.json (Zoology's Figure 2, arXiv 2312.04927): the full grid, the
// cut one-GPU variant, the core variant and the FLOP-count spec pass `mixlab sweep SPEC --dry-run`;
// the cut spec keeps the paper's protocol (it cuts only epochs, examples, widths and learning
// rates), every point of the core spec is a point of the full grid but for its epochs, and the
// short spec is the full grid's points at its two shorter settings, to the letter.

#include "harness/spec.h"
#include "tests/run_mixlab.h"
#include "tests/temp_dir.h"

#include <gtest/gtest.h>

#include <set>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

using mixlab::testing::TempDir;

std::string spec_path(const std::string& name) { return std::string(MIXLAB_SOURCE_DIR) + "/experiments/paper/" + name; }

TEST(ZoologySpecs, EverySpecPassesTheDryRun) {
  const TempDir dir("zoology_specs");
  for (const char* name : {"zoology-mqar.json", "zoology-mqar-cut.json", "zoology-mqar-core.json", "zoology-mqar-flops.json",
                           "zoology-mqar-dropout-check.json", "zoology-mqar-short.json"}) {
    const auto outcome = testing::run_mixlab(dir.path.string(), "sweep " + spec_path(name) + " --dry-run");
    EXPECT_EQ(outcome.status, 0) << name << ":\n" << outcome.output;
  }
}

TEST(ZoologySpecs, TheFullGridIsThePapersAndTheCutKeepsItsProtocol) {
  const SweepSpec full = load_spec(spec_path("zoology-mqar.json"), "cuda");
  // 13 models × 4 (length, pairs) × 4 widths × 4 learning rates.
  EXPECT_EQ(full.points.size(), 13u * 4 * 4 * 4);
  std::set<std::pair<int64_t, int64_t>> settings;
  std::set<double> rates;
  for (const auto& point : full.points) {
    const auto& train = point.config["train"];
    settings.insert({train["seq_len"].get<int64_t>(), train["data"]["num_kv_pairs"].get<int64_t>()});
    rates.insert(train["lr"].get<double>());
    EXPECT_EQ(point.config["model"]["vocab_size"], 8192);
    EXPECT_EQ(train["epochs"], 64);
    EXPECT_EQ(train["data"]["examples"], 100000);
    EXPECT_EQ(train["eval"]["examples"], 3000);
  }
  EXPECT_EQ(settings, (std::set<std::pair<int64_t, int64_t>>{{64, 4}, {128, 8}, {256, 16}, {512, 64}}));
  ASSERT_EQ(rates.size(), 4u);
  EXPECT_DOUBLE_EQ(*rates.begin(), 1e-4);
  EXPECT_DOUBLE_EQ(*rates.rbegin(), 1e-2);

  const SweepSpec cut = load_spec(spec_path("zoology-mqar-cut.json"), "cuda");
  std::set<std::string> full_models, cut_models;
  for (const auto& point : full.points) full_models.insert(point.config["model"].value("name", ""));
  for (const auto& point : cut.points) {
    cut_models.insert(point.config["model"].value("name", ""));
    const auto& train = point.config["train"];
    for (const char* key : {"stop_at_accuracy", "weight_decay", "min_lr", "warmup_steps"})
      EXPECT_EQ(train[key], full.points.front().config["train"][key]) << key;
    EXPECT_EQ(train["data"]["random_non_queries"], false);
    EXPECT_EQ(train["data"]["power_a"], 0.01);
    EXPECT_EQ(train["eval"]["examples"], 3000) << "the test set is not cut";
    EXPECT_EQ(point.config["model"]["vocab_size"], 8192);
  }
  EXPECT_EQ(cut_models, full_models) << "every mixer stays on the chart";
}

TEST(ZoologySpecs, TheCoreIsASubsetOfTheFullGridButForItsEpochs) {
  const SweepSpec full = load_spec(spec_path("zoology-mqar.json"), "cuda");
  const SweepSpec core = load_spec(spec_path("zoology-mqar-core.json"), "cuda");
  EXPECT_EQ(core.points.size(), 13u * 2 * 2 * 2);
  // Models compared without their width (the grid's axis).
  const auto model_of = [](const SweepPoint& point) {
    auto model = point.config["model"];
    model.erase("d_model");
    return model.dump();
  };
  std::set<std::string> full_configs, full_models, core_models;
  for (const auto& point : full.points) {
    full_configs.insert(point.config.dump());
    full_models.insert(model_of(point));
  }
  for (const auto& point : core.points) {
    core_models.insert(model_of(point));
    EXPECT_EQ(point.config["train"]["epochs"], 8);
    auto as_full = point.config;
    as_full["train"]["epochs"] = 64;
    EXPECT_EQ(full_configs.count(as_full.dump()), 1u) << "not a point of the full grid: " << point.label;
  }
  EXPECT_EQ(core_models, full_models) << "every mixer of the full grid is on the core chart";
}

TEST(ZoologySpecs, TheShortSpecIsTheFullGridAtItsShorterSettings) {
  const SweepSpec full = load_spec(spec_path("zoology-mqar.json"), "cuda");
  const SweepSpec short_settings = load_spec(spec_path("zoology-mqar-short.json"), "cuda");
  std::set<std::string> want, got;
  for (const auto& point : full.points)
    if (point.config["train"]["seq_len"].get<int64_t>() <= 128) want.insert(point_id(point.config));
  for (const auto& point : short_settings.points) got.insert(point_id(point.config));
  EXPECT_EQ(want.size(), 13u * 2 * 4 * 4);
  EXPECT_EQ(got, want) << "the same point ids as the full grid's (64, 4) and (128, 8) points";
}

}  // namespace
}  // namespace mixlab
