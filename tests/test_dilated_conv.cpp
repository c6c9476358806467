// dilated_conv (WaveMix made causal) against its filter-bank equations per position, and the claim
// that at initialisation it is an undecimated causal Haar pyramid: aᴸ_t = 2^(−L/2) Σ_{i<2ᴸ} a⁰_{t−i}.

#include "tests/zoo_helpers.h"

#include <cmath>

namespace mixlab {
namespace MIXLAB_UNITY_ID {
using namespace zoo_test;

// The sub-bands [d¹ ∥ … ∥ dᴸ ∥ aᴸ] from a⁰ = W_in u, level by level with explicit lags.
torch::Tensor sub_bands(const TokenMixerPtr& m, const torch::Tensor& x, int64_t levels) {
  auto low = weight(m, "low_pass"), high = weight(m, "high_pass");  // [L, 2, d]
  auto a = torch::matmul(x, weight(m, "in_proj.weight").t());
  std::vector<torch::Tensor> bands;
  for (int64_t level = 0; level < levels; ++level) {
    const int64_t lag = int64_t{1} << level;
    auto next = torch::zeros_like(a), detail = torch::zeros_like(a);
    for (int64_t t = 0; t < x.size(1); ++t) {
      auto current = a.select(1, t);
      auto delayed = t >= lag ? a.select(1, t - lag) : torch::zeros_like(current);
      next.select(1, t).copy_(low[level][0] * delayed + low[level][1] * current);
      detail.select(1, t).copy_(high[level][0] * delayed + high[level][1] * current);
    }
    bands.push_back(detail);
    a = next;
  }
  bands.push_back(a);
  return torch::cat(bands, -1);
}

torch::Tensor reference(const TokenMixerPtr& m, const torch::Tensor& x, int64_t levels) {
  auto h = torch::matmul(sub_bands(m, x, levels), weight(m, "mlp_in.weight").t());
  h = exact_gelu(h);
  return torch::matmul(h, weight(m, "mlp_out.weight").t());
}

TEST(DilatedConv, MatchesPerPositionFilterBanks) {
  for (int64_t levels : {1, 3, 5}) {
    auto m = make_f64("dilated_conv", tiny_context(), {{"levels", levels}});
    {
      torch::NoGradGuard no_grad;
      for (auto& p : m->parameters()) p.add_(0.2 * torch::randn_like(p));  // learned, no longer Haar
    }
    auto x = random_input(2, 19, 16, levels);
    auto expected = reference(m, x, levels);
    EXPECT_LT(max_abs_diff(m->forward(x), expected), 1e-12) << levels;
    EXPECT_LT(max_abs_diff(run_steps(m, x), expected), 1e-12) << levels;
  }
}

TEST(DilatedConv, StartsAsACausalHaarPyramid) {
  const int64_t levels = 3, n = 20, span = 8;
  auto m = make_f64("dilated_conv", tiny_context(), {{"levels", levels}});
  auto x = random_input(1, n, 16, 4);
  auto bands = sub_bands(m, x, levels);
  auto a0 = torch::matmul(x, weight(m, "in_proj.weight").t());
  auto approximation = bands.narrow(-1, levels * 16, 16);
  // The taps are created in the default dtype (float32): 1/√2 carries a 3e-8 relative rounding.
  const double tolerance = 1e-6;
  for (int64_t t = 0; t < n; ++t) {
    auto window = a0.narrow(1, std::max<int64_t>(0, t - span + 1), std::min(t + 1, span)).sum(1);
    EXPECT_LT(max_abs_diff(approximation.select(1, t), window / std::pow(2.0, levels / 2.0)), tolerance) << t;
  }
  // The level-1 detail is the Haar difference (a⁰_t − a⁰_{t−1}) / √2.
  auto detail = bands.narrow(-1, 0, 16);
  EXPECT_LT(max_abs_diff(detail.select(1, 5), (a0.select(1, 5) - a0.select(1, 4)) / std::sqrt(2.0)), tolerance);
}

TEST(DilatedConv, StateHoldsTwoToTheLMinusOneVectors) {
  auto m = make_f64("dilated_conv", tiny_context(), {{"levels", int64_t{4}}, {"expansion", 1.0}});
  auto cost = m->cost({2, 12, 8});
  EXPECT_DOUBLE_EQ(cost.state_bytes, 2.0 * 15 * 16 * 8);
  EXPECT_DOUBLE_EQ(cost.matmul_flops, 2.0 * 12 * (2 * 16 * 16 + 2 * 5 * 16 * 16 + 2 * 16 * 16));
}

}  // namespace
}  // namespace mixlab
