// causal_sgu (gMLP's spatial gating unit, lower-triangular) against its equations per position:
//   z = GELU(U u) = [z1 ∥ z2],  f_t = Σ_{s≤t} W[t, s] · LN(z2)_s + b_t,  y_t = V (z1_t ⊙ f_t);
// and the length bound, stated and checked.

#include "tests/zoo_helpers.h"

#include <cmath>

namespace mixlab {
namespace MIXLAB_UNITY_ID {
using namespace zoo_test;

// LN over the last axis with the module's affine weight and bias (eps 1e-5, biased variance).
torch::Tensor layer_norm(const torch::Tensor& x, const torch::Tensor& gain, const torch::Tensor& shift) {
  auto mean = x.mean(-1, true);
  auto variance = (x - mean).square().mean(-1, true);
  return (x - mean) / torch::sqrt(variance + 1e-5) * gain + shift;
}

torch::Tensor reference(const TokenMixerPtr& m, const torch::Tensor& x) {
  auto z = torch::matmul(x, weight(m, "in_proj.weight").t());
  z = exact_gelu(z);
  const int64_t half = z.size(-1) / 2;
  auto z1 = z.narrow(-1, 0, half);
  auto normed = layer_norm(z.narrow(-1, half, half), weight(m, "norm.weight"), weight(m, "norm.bias"));
  auto w = weight(m, "spatial_weight"), b = weight(m, "spatial_bias");
  auto gated = torch::zeros_like(z1);
  for (int64_t t = 0; t < x.size(1); ++t) {
    auto f = b[t] * torch::ones_like(z1.select(1, t));
    for (int64_t s = 0; s <= t; ++s) f = f + w[t][s] * normed.select(1, s);
    gated.select(1, t).copy_(z1.select(1, t) * f);
  }
  return torch::matmul(gated, weight(m, "out_proj.weight").t());
}

TokenMixerPtr make(int64_t max_len, double expansion = 2.0) {
  auto m = make_f64("causal_sgu", tiny_context(), {{"max_len", max_len}, {"expansion", expansion}});
  torch::NoGradGuard no_grad;
  for (auto& p : m->parameters()) p.add_(0.3 * torch::randn_like(p));  // W far from its near-zero start
  return m;
}

TEST(CausalSgu, MatchesPerPositionEquations) {
  for (double expansion : {2.0, 1.0}) {
    auto m = make(20, expansion);
    for (int64_t n : {1, 9, 20}) {
      auto x = random_input(2, n, 16, n);
      auto expected = reference(m, x);
      EXPECT_LT(max_abs_diff(m->forward(x), expected), 1e-12) << "N=" << n;
      EXPECT_LT(max_abs_diff(run_steps(m, x), expected), 1e-12) << "N=" << n;
    }
  }
}

// gMLP §2.1: W near zero and b = 1 at initialisation, so the unit starts as z1 ⊙ 1 (a gated MLP).
TEST(CausalSgu, StartsAsAGatedMlp) {
  auto m = make_f64("causal_sgu", tiny_context(), {{"max_len", int64_t{16}}});
  EXPECT_LT(weight(m, "spatial_weight").abs().max().item<double>(), 0.01);
  EXPECT_TRUE(torch::equal(weight(m, "spatial_bias"), torch::ones({16}, torch::kFloat64)));
}

TEST(CausalSgu, RefusesSequencesBeyondMaxLen) {
  auto m = make(20);
  EXPECT_THROW(m->forward(random_input(1, 21, 16)), std::invalid_argument);
  auto x = random_input(1, 21, 16);
  auto state = m->initial_state(1, x.options());
  for (int64_t t = 0; t < 20; ++t) m->step(x.select(1, t), state);
  EXPECT_THROW(m->step(x.select(1, 20), state), std::invalid_argument);
}

TEST(CausalSgu, CostIsQuadraticInTheMixingProduct) {
  auto m = make(64);
  const double b = 2, n = 12, d = 16, h = 16;
  auto cost = m->cost({2, 12, 8});
  EXPECT_DOUBLE_EQ(cost.matmul_flops, 2 * b * n * d * 2 * h + 2 * b * n * h * d + 2 * b * n * n * h);
  EXPECT_DOUBLE_EQ(cost.state_bytes, b * n * h * 8);
}

}  // namespace
}  // namespace mixlab
