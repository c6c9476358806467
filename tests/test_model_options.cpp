// The model options of harness/layer_averaging.h (MambaMixer's cross-layer weighted averaging) and
// harness/block_router.h (MoD and D-LLM block routers), against float64 references that pack,
// average and select by hand from the weights.

#include "harness/config.h"
#include "harness/flop_counter.h"
#include "harness/model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

LanguageModel make_model(const std::string& extra, int64_t layers = 2, uint64_t seed = 3) {
  auto config = parse_model_config(json::parse(R"({"vocab_size": 32, "d_model": 16, "n_heads": 2, "n_layers": )" +
                                               std::to_string(layers) + R"(, "init_std": 0.3,
      "pattern": [{"mixer": "attention"}, {"mixer": "mlp"}])" + extra + "}"), "test");
  torch::manual_seed(seed);
  LanguageModel model(config);
  model->to(torch::kFloat64);
  return model;
}

torch::Tensor rms(const torch::Tensor& x) { return x * torch::rsqrt(x.square().mean(-1, true) + 1e-6); }

torch::Tensor parameter(LanguageModel& model, const std::string& name) { return model->named_parameters()[name]; }

torch::Tensor decode(LanguageModel& model, const torch::Tensor& tokens) {
  auto states = model->initial_states(tokens.size(0), torch::TensorOptions().dtype(torch::kFloat64));
  std::vector<torch::Tensor> out;
  for (int64_t t = 0; t < tokens.size(1); ++t) out.push_back(model->step(tokens.select(1, t), states));
  return torch::stack(out, 1);
}

// ------------------------------------------------------------------ cross-layer averaging

TEST(LayerAveraging, StartsAsThePlainStackAndFollowsItsWeights) {
  torch::NoGradGuard no_grad;
  auto plain = make_model("");
  auto averaged = make_model(R"(, "layer_averaging": true)");
  auto tokens = torch::randint(0, 32, {2, 9}, torch::kLong);
  EXPECT_TRUE(torch::allclose(averaged->forward(tokens), plain->forward(tokens), 1e-12, 1e-12)) << "α = identity at init";
  // Random α: x̄_ℓ = Σ_{i≤ℓ} α_{ℓ,i} x_i with x_{ℓ+1} = x̄_ℓ + f_{ℓ+1}(RMSNorm(x̄_ℓ)), written out.
  for (int64_t l = 1; l <= 4; ++l) parameter(averaged, "layer_averaging.alpha_" + std::to_string(l)).normal_(0.5, 0.5);
  std::vector<torch::Tensor> xs{parameter(averaged, "embed_tokens.weight").index({tokens})};
  auto h = xs[0];
  for (int64_t i = 0; i < 4; ++i) {
    xs.push_back(h + averaged->sublayers()[i]->forward(rms(h) * parameter(averaged, "layers." + std::to_string(i) + ".norm.weight")));
    auto alpha = parameter(averaged, "layer_averaging.alpha_" + std::to_string(i + 1));
    h = torch::zeros_like(h);
    for (int64_t j = 0; j <= i + 1; ++j) h = h + alpha[j] * xs[j];
  }
  auto expected = torch::matmul(rms(h) * parameter(averaged, "norm.weight"), parameter(averaged, "embed_tokens.weight").t());
  auto logits = averaged->forward(tokens);
  EXPECT_LT((logits - expected).abs().max().item<double>(), 1e-10);
  EXPECT_LT((decode(averaged, tokens) - logits).abs().max().item<double>(), 1e-9) << "step = forward";
  const double extra = averaged->cost(CostShape{2, 9, 8}).flops - plain->cost(CostShape{2, 9, 8}).flops;
  EXPECT_DOUBLE_EQ(extra, 2.0 * 2 * 9 * 16 * (2 + 3 + 4 + 5));
  EXPECT_EQ(averaged->parameter_count() - plain->parameter_count(), 2 + 3 + 4 + 5);
}

// ------------------------------------------------------------------ MoD

// One routed layer (layer 0): the reference packs the selected tokens of each row by hand and runs
// the same sublayers of an unrouted model with the same weights on them.
torch::Tensor mod_reference(LanguageModel& routed, LanguageModel& plain, const torch::Tensor& tokens,
                            const std::vector<std::vector<int64_t>>& selected) {
  auto h = parameter(plain, "embed_tokens.weight").index({tokens});  // [B, N, d]
  auto r = torch::matmul(h, parameter(routed, "router_0.router.weight").t()).squeeze(-1) + parameter(routed, "router_0.router.bias");
  auto out = h.clone();
  for (size_t b = 0; b < selected.size(); ++b) {
    if (selected[b].empty()) continue;
    auto index = torch::tensor(selected[b], torch::kLong);
    auto x = h[b].index_select(0, index).unsqueeze(0), start = x;
    for (int64_t i = 0; i < 2; ++i) x = x + plain->sublayers()[i]->forward(rms(x));
    for (size_t j = 0; j < selected[b].size(); ++j) {
      const int64_t t = selected[b][j];
      out[b][t] = h[b][t] + torch::sigmoid(r[b][t]) * (x[0][j] - start[0][j]);
    }
  }
  return rms(out);
}

TEST(BlockRouting, ModTrainingRoutesTheTopKThroughThePackedLayer) {
  auto plain = make_model("", 1);
  auto routed = make_model(R"(, "routing": {"router": "mod", "capacity": 0.3, "first_layer": 0, "every": 1})", 1);
  routed->train();
  auto tokens = torch::randint(0, 32, {2, 13}, torch::kLong);
  auto h = parameter(plain, "embed_tokens.weight").index({tokens});
  auto r = torch::matmul(h, parameter(routed, "router_0.router.weight").t()).squeeze(-1);
  std::vector<std::vector<int64_t>> selected(2);
  for (int64_t b = 0; b < 2; ++b) {
    std::vector<int64_t> order(13);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t c) { return r[b][a].item<double>() > r[b][c].item<double>(); });
    selected[b].assign(order.begin(), order.begin() + 4);  // ⌈0.3 · 13⌉ = 4
    std::sort(selected[b].begin(), selected[b].end());
  }
  torch::Tensor hidden;
  {
    FlopCounter counter;
    hidden = routed->hidden_states(tokens);
    // The packed layer's products plus the LM head: exact for MoD training (k = 4 in every row).
    auto logits = routed->logits(hidden);
    EXPECT_NEAR(counter.matmul_flops(), routed->cost(CostShape{2, 13, 8}).matmul_flops, 1e-6);
  }
  EXPECT_LT((hidden - mod_reference(routed, plain, tokens, selected)).abs().max().item<double>(), 1e-10);
  // The predictor learns membership by BCE; the router learns through σ(r).
  auto loss = routed->forward(tokens).square().mean() + routed->auxiliary_loss();
  loss.backward();
  for (const char* name : {"router_0.router.weight", "router_0.predictor.weight"})
    EXPECT_GT(parameter(routed, name).grad().abs().sum().item<double>(), 0) << name;
}

TEST(BlockRouting, ModInferenceIsCausalAndDecodesLikeForward) {
  torch::NoGradGuard no_grad;
  auto routed = make_model(R"(, "routing": {"router": "mod"})", 2);  // layer 1 routed (MoD's odd layers)
  routed->eval();
  auto tokens = torch::randint(0, 32, {1, 15}, torch::kLong);
  auto logits = routed->forward(tokens);
  EXPECT_LT((decode(routed, tokens) - logits).abs().max().item<double>(), 1e-9);
  auto changed = tokens.clone();
  changed.narrow(1, 8, 7).random_(0, 32);
  EXPECT_TRUE(torch::allclose(routed->forward(changed).narrow(1, 0, 8), logits.narrow(1, 0, 8), 1e-12, 1e-12));
  // Some but not all tokens take the layer: the predictor rule p_t > 0, from the weights.
  const auto fraction = routed->named_modules()["router_1"]->as<BlockRouterImpl>()->routed_fraction();
  EXPECT_GT(fraction, 0.0);
  EXPECT_LT(fraction, 1.0);
  auto two = torch::randint(0, 32, {2, 5}, torch::kLong);
  auto states = routed->initial_states(2, torch::TensorOptions().dtype(torch::kFloat64));
  EXPECT_THROW(routed->step(two.select(1, 0), states), std::invalid_argument);
}

// ------------------------------------------------------------------ D-LLM

TEST(BlockRouting, DllmExecutesByThresholdKeepsTheFirstTokensAndDecodesLikeForward) {
  torch::NoGradGuard no_grad;
  auto plain = make_model("", 1);
  auto routed = make_model(R"(, "routing": {"router": "dllm", "first_layer": 0, "always_first": 3})", 1);
  routed->eval();
  // Bias the router so that execution depends on the token: π_execute − π_skip = (W_2 a)₁ − (W_2 a)₀.
  parameter(routed, "router_0.router_out.bias").zero_();
  auto tokens = torch::randint(0, 32, {2, 12}, torch::kLong);
  auto h = parameter(plain, "embed_tokens.weight").index({tokens});
  auto a = torch::matmul(h, parameter(routed, "router_0.router_in.weight").t()) + parameter(routed, "router_0.router_in.bias");
  auto pi = torch::matmul(torch::silu(rms(a) * parameter(routed, "router_0.router_norm")),
                          parameter(routed, "router_0.router_out.weight").t());
  std::vector<std::vector<int64_t>> executed(2);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 12; ++t)
      if (t < 3 || pi[b][t][1].item<double>() > pi[b][t][0].item<double>()) executed[b].push_back(t);
  ASSERT_LT(executed[0].size() + executed[1].size(), 24u);
  ASSERT_GT(executed[0].size() + executed[1].size(), 6u);
  // Executed tokens: the packed layer's output (w = 1); skipped: unchanged.
  auto out = h.clone();
  for (int64_t b = 0; b < 2; ++b) {
    auto index = torch::tensor(executed[b], torch::kLong);
    auto x = h[b].index_select(0, index).unsqueeze(0);
    for (int64_t i = 0; i < 2; ++i) x = x + plain->sublayers()[i]->forward(rms(x));
    out[b].index_copy_(0, index, x[0]);
  }
  EXPECT_LT((routed->hidden_states(tokens) - rms(out)).abs().max().item<double>(), 1e-10);
  auto logits = routed->forward(tokens.narrow(0, 0, 1));
  EXPECT_LT((decode(routed, tokens.narrow(0, 0, 1)) - logits).abs().max().item<double>(), 1e-9);
}

TEST(BlockRouting, DllmTrainingUsesStraightThroughGumbelAndTheRateLoss) {
  auto routed = make_model(R"(, "routing": {"router": "dllm", "aux_coef": 1.0, "target": 0.2})", 3);
  routed->train();
  auto tokens = torch::randint(0, 32, {2, 16}, torch::kLong);
  auto logits = routed->forward(tokens);
  auto aux = routed->auxiliary_loss();
  ASSERT_TRUE(aux.defined());
  EXPECT_GT(aux.item<double>(), 0.0) << "the router starts favouring execution, far from target 0.2";
  (logits.square().mean() + aux).backward();
  EXPECT_GT(parameter(routed, "router_2.router_in.weight").grad().abs().sum().item<double>(), 0);
}

TEST(BlockRouting, ConfigErrorsNameTheField) {
  try {
    make_model(R"(, "routing": {"router": "moe"})");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("routing.router"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_model(R"(, "routing": {"router": "mod", "capcity": 0.5})"), ConfigError);
  EXPECT_THROW(make_model(R"(, "routing": {"router": "mod"}, "layer_averaging": true)"), RegistryError);
}

}  // namespace
}  // namespace mixlab
