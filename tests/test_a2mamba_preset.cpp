// The A2Mamba preset (experiments/presets/a2mamba.json): a local causal attention map applied right
// after each Mamba layer, with no MLP between them, and a model that decodes like its forward.

#include "harness/config.h"
#include "harness/model.h"

#include <gtest/gtest.h>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

ModelConfig a2mamba(const json& overrides = json::object()) {
  json model = {{"preset", "a2mamba"}};
  merge_json(model, overrides);
  return parse_model_config(resolve_model_json(model, "test"), "test");
}

TEST(A2MambaPreset, SwaReMixesTheMambaOutputs) {
  auto config = a2mamba();
  ASSERT_EQ(config.pattern.size(), 3u);
  EXPECT_EQ(config.pattern[0].mixer, "mamba");
  EXPECT_EQ(config.pattern[1].mixer, "swa");  // directly on h + mamba(RMSNorm(h))
  EXPECT_EQ(std::get<int64_t>(config.pattern[1].params.at("window")), 16);
  EXPECT_EQ(config.pattern[2].mixer, "mlp");
  EXPECT_EQ(config.name, "a2mamba");
}

TEST(A2MambaPreset, DecodesLikeItsForward) {
  torch::manual_seed(8);
  LanguageModel model(a2mamba({{"d_model", 32}, {"n_heads", 2}}));
  model->to(torch::kFloat64);
  model->eval();
  auto tokens = torch::randint(0, 256, {2, 20}, torch::kLong);  // longer than the window
  torch::NoGradGuard no_grad;
  auto logits = model->forward(tokens);
  auto states = model->initial_states(2, torch::TensorOptions().dtype(torch::kFloat64));
  for (int64_t t = 0; t < 20; ++t)
    EXPECT_TRUE(torch::allclose(model->step(tokens.select(1, t), states), logits.select(1, t), 1e-9, 1e-9)) << t;
}

}  // namespace
}  // namespace mixlab
