// The mixer-zoo presets and sweep spec parse, say what they claim (layer layouts), and build
// working models; DTRNet inside a model routes on the raw residual and decodes like its forward.

#include "harness/config.h"
#include "harness/model.h"

#include <gtest/gtest.h>

#include <iostream>
#include <set>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

ModelConfig preset(const std::string& name, const json& overrides = json::object()) {
  json model = {{"preset", name}};
  merge_json(model, overrides);
  return parse_model_config(resolve_model_json(model, "test"), "test");
}

TEST(ZooPresets, CaformerIsSepconvThenAttention) {
  auto config = preset("caformer");
  ASSERT_EQ(config.n_layers, 1);
  ASSERT_EQ(config.pattern.size(), 12u);  // 6 layers of [mixer, mlp]
  for (size_t layer = 0; layer < 6; ++layer) {
    EXPECT_EQ(config.pattern[2 * layer].mixer, layer < 2 ? "sepconv" : "attention") << layer;
    EXPECT_EQ(config.pattern[2 * layer + 1].mixer, "mlp");
  }
}

TEST(ZooPresets, Dtrnet360mRoutesTheLayersOfTheRelease) {
  auto config = preset("dtrnet-360m");
  ASSERT_EQ(config.pattern.size(), 64u);
  std::vector<int64_t> routed;
  for (size_t layer = 0; layer < 32; ++layer)
    if (config.pattern[2 * layer].mixer == "dtrnet") routed.push_back(static_cast<int64_t>(layer));
  std::vector<int64_t> expected = {0, 1};
  for (int64_t layer = 3; layer < 32; layer += 2) expected.push_back(layer);
  EXPECT_EQ(routed, expected);  // 17 routed; 2, 4, …, 30 dense
  EXPECT_EQ(config.d_model, 960);
}

TEST(ZooPresets, DtrnetModelDecodesLikeItsForward) {
  torch::manual_seed(5);
  LanguageModel model(preset("dtrnet-bilayer", {{"d_model", 32}, {"n_layers", 2}}));
  model->to(torch::kFloat64);
  auto tokens = torch::randint(0, 256, {2, 12}, torch::kLong);
  auto logits = model->forward(tokens);
  auto aux = model->auxiliary_loss();
  EXPECT_GT(aux.item<double>(), 0.0);
  torch::NoGradGuard no_grad;
  auto states = model->initial_states(2, torch::TensorOptions().dtype(torch::kFloat64));
  for (int64_t t = 0; t < 12; ++t)
    EXPECT_TRUE(torch::allclose(model->step(tokens.select(1, t), states), logits.select(1, t), 1e-9, 1e-9)) << t;
}

TEST(ZooPresets, MixerZooSpecPatternsAllBuild) {
  auto spec = read_json_file(std::string(MIXLAB_SOURCE_DIR) + "/experiments/mixer-zoo.json");
  const auto& patterns = spec["grid"]["model.pattern"];
  ASSERT_GE(patterns.size(), 15u);
  std::set<std::string> covered;
  for (const auto& pattern : patterns) {
    for (const auto& sublayer : pattern) covered.insert(sublayer["mixer"].get<std::string>());
    json model = spec["base"]["model"];
    model["pattern"] = pattern;
    model["d_model"] = 16;
    model["n_heads"] = 2;
    LanguageModel built(parse_model_config(model, "experiments/mixer-zoo.json"));
    auto logits = built->forward(torch::randint(0, 256, {1, 8}, torch::kLong));
    EXPECT_TRUE(torch::isfinite(logits).all().item<bool>()) << pattern.dump();
  }
  // Every entry that existed when the spec was written must be there; later ones are reported.
  for (const char* name : {"attention", "mlp", "identity", "pool", "sepconv", "random_mixing",
                           "linear_attention", "gated_cnn", "fft_conv", "dtrnet", "learned_topk",
                           "swa", "checkpoint_attention", "mamba", "mamba2"})
    EXPECT_TRUE(covered.count(name)) << name << " is missing from experiments/mixer-zoo.json";
  for (const auto& name : Registry::global().names())
    if (!covered.count(name)) std::cout << "note: " << name << " is not in experiments/mixer-zoo.json yet\n";
}

}  // namespace
}  // namespace mixlab
