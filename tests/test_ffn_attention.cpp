// ffn_attention (MetaMixer) against an explicit per-position loop over its three equations:
//   a_t = W_q u_t + b_q,   b_t = GELU(Σ_i w1_i ⊙ a_{t-(k1-1-i)} + c1),   y_t = Σ_i w2_i ⊙ b_{t-(k2-1-i)} + c2.

#include "tests/zoo_helpers.h"

namespace mixlab {
namespace MIXLAB_UNITY_ID {
using namespace zoo_test;

torch::Tensor reference(const TokenMixerPtr& m, const torch::Tensor& x) {
  auto a = torch::matmul(x, weight(m, "q_proj.weight").t()) + weight(m, "q_proj.bias");
  auto b = exact_gelu(loop_causal_conv(a, weight(m, "key_conv_weight"), weight(m, "key_conv_bias")));
  return loop_causal_conv(b, weight(m, "value_conv_weight"), weight(m, "value_conv_bias"));
}

TokenMixerPtr make(int64_t k1, int64_t k2) {
  auto m = make_f64("ffn_attention", tiny_context(), {{"key_kernel", k1}, {"value_kernel", k2}});
  torch::NoGradGuard no_grad;
  for (auto& p : m->parameters()) p.add_(0.1 * torch::randn_like(p));  // non-zero biases
  return m;
}

TEST(FfnAttention, MatchesPerPositionEquations) {
  for (auto [k1, k2] : std::vector<std::pair<int64_t, int64_t>>{{7, 7}, {3, 5}, {1, 4}}) {
    auto m = make(k1, k2);
    auto x = random_input(2, 15, 16, k1 + k2);
    auto expected = reference(m, x);
    EXPECT_LT(max_abs_diff(m->forward(x), expected), 1e-12) << k1 << "," << k2;
    EXPECT_LT(max_abs_diff(run_steps(m, x), expected), 1e-12) << k1 << "," << k2;
  }
}

// The receptive field is k1 + k2 - 1 tokens: y_t moves with u_{t-(k1+k2-2)} and not with u_{t-(k1+k2-1)}.
TEST(FfnAttention, ReceptiveFieldIsK1PlusK2MinusOne) {
  auto m = make(3, 5);
  torch::NoGradGuard no_grad;
  auto x = random_input(1, 16, 16, 3);
  auto y = m->forward(x);
  const int64_t t = 12, field = 3 + 5 - 1;
  for (int64_t source : {t - field + 1, t - field}) {
    auto perturbed = x.clone();
    perturbed.select(1, source).add_(1.0);
    const double moved = max_abs_diff(m->forward(perturbed).select(1, t), y.select(1, t));
    if (source == t - field) EXPECT_EQ(moved, 0.0);
    else EXPECT_GT(moved, 1e-6);
  }
}

TEST(FfnAttention, CostIsOneProjectionAndTwoConvolutions) {
  auto m = make(7, 5);
  auto cost = m->cost({2, 12, 8});
  EXPECT_DOUBLE_EQ(cost.matmul_flops, 2.0 * 2 * 12 * 16 * 16);
  EXPECT_DOUBLE_EQ(cost.state_bytes, 2.0 * (6 + 4) * 16 * 8);
  EXPECT_NEAR(cost.flops / m->cost({2, 24, 8}).flops, 0.5, 1e-12);  // linear in N
}

}  // namespace
}  // namespace mixlab
