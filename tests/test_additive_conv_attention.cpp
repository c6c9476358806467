// additive_conv_attention (CAS-ViT) against its equations written per position:
//   S(z)_t = z_t · σ(w_s · ReLU(dwconv(z)_t)),  C(z)_t = z_t ⊙ σ(W_c (1/(t+1)) Σ_{s≤t} z_s),
//   y = dwconv_proj( dwconv_mix( C(S(q)) + C(S(k)) ) ⊙ v ).

#include "tests/zoo_helpers.h"

namespace mixlab {
namespace MIXLAB_UNITY_ID {
using namespace zoo_test;

torch::Tensor phi(const TokenMixerPtr& m, const std::string& who, const torch::Tensor& z) {
  auto convolved = loop_causal_conv(z, weight(m, who + "_conv_weight"), weight(m, who + "_conv_bias"));
  auto spatial = weight(m, who + "_spatial_weight"), channel = weight(m, who + "_channel.weight");
  auto out = torch::zeros_like(z);
  auto running = torch::zeros({z.size(0), z.size(2)}, z.options());
  for (int64_t t = 0; t < z.size(1); ++t) {
    auto score = torch::matmul(torch::relu(convolved.select(1, t)), spatial);        // [B]
    auto s_t = z.select(1, t) * torch::sigmoid(score).unsqueeze(-1);                  // S(z)_t
    running += s_t;
    auto mean = running / static_cast<double>(t + 1);
    out.select(1, t).copy_(s_t * torch::sigmoid(torch::matmul(mean, channel.t())));  // C(S(z))_t
  }
  return out;
}

torch::Tensor reference(const TokenMixerPtr& m, const torch::Tensor& x) {
  auto q = torch::matmul(x, weight(m, "q_proj.weight").t());
  auto k = torch::matmul(x, weight(m, "k_proj.weight").t());
  auto v = torch::matmul(x, weight(m, "v_proj.weight").t());
  auto similarity = phi(m, "query", q) + phi(m, "key", k);
  auto mixed = loop_causal_conv(similarity, weight(m, "mix_conv_weight"), weight(m, "mix_conv_bias")) * v;
  return loop_causal_conv(mixed, weight(m, "proj_conv_weight"), weight(m, "proj_conv_bias"));
}

TokenMixerPtr make(int64_t kernel) {
  auto m = make_f64("additive_conv_attention", tiny_context(), {{"kernel_size", kernel}});
  torch::NoGradGuard no_grad;
  for (auto& p : m->parameters()) p.add_(0.1 * torch::randn_like(p));  // non-zero biases
  return m;
}

TEST(AdditiveConvAttention, MatchesPerPositionEquations) {
  for (int64_t kernel : {3, 1, 5}) {
    auto m = make(kernel);
    auto x = random_input(2, 14, 16, kernel);
    auto expected = reference(m, x);
    EXPECT_LT(max_abs_diff(m->forward(x), expected), 1e-12) << kernel;
    EXPECT_LT(max_abs_diff(run_steps(m, x), expected), 1e-12) << kernel;
  }
}

// The running-mean channel gate is the only long-range path: with W_c = 0 the output at t does not
// depend on tokens older than the convolution stack's reach (3k - 3 tokens back); with W_c it does.
TEST(AdditiveConvAttention, OnlyTheRunningMeanReachesFarBack) {
  auto m = make(3);
  torch::NoGradGuard no_grad;
  auto x = random_input(1, 20, 16, 9);
  const int64_t t = 19, far = 2;  // 17 tokens back, beyond the 7-token reach
  auto perturbed = x.clone();
  perturbed.select(1, far).add_(1.0);
  EXPECT_GT(max_abs_diff(m->forward(perturbed).select(1, t), m->forward(x).select(1, t)), 1e-8);
  for (const char* who : {"query_channel.weight", "key_channel.weight"})
    for (auto& item : m->named_parameters())
      if (item.key() == who) item.value().zero_();
  EXPECT_EQ(max_abs_diff(m->forward(perturbed).select(1, t), m->forward(x).select(1, t)), 0.0);
}

TEST(AdditiveConvAttention, CostCountsFiveSquareProducts) {
  auto m = make(3);
  auto cost = m->cost({2, 12, 8});
  EXPECT_DOUBLE_EQ(cost.matmul_flops, 10.0 * 2 * 12 * 16 * 16);  // q, k, v and the two channel gates
  EXPECT_DOUBLE_EQ(cost.state_bytes, 2.0 * (4 * 2 + 2) * 16 * 8);
  auto state = m->initial_state(2, torch::TensorOptions().dtype(torch::kFloat64));
  EXPECT_EQ(state.bytes(), 2 * (4 * 2 + 2) * 16 * 8);
}

}  // namespace
}  // namespace mixlab
