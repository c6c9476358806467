// fft_conv: the FFT path equals the direct causal convolution  c_t = Σ_{s≤t} K_{:,t-s} ⊙ v_s + D ⊙ v_t
// with the same filter, followed by the gate and the output projection.

#include "tests/zoo_helpers.h"

namespace mixlab {
namespace {
using namespace zoo_test;

torch::Tensor reference(const TokenMixerPtr& m, const torch::Tensor& x, const std::string& gate) {
  auto v = torch::matmul(x, weight(m, "v_proj.weight").t());
  auto kernel = weight(m, "kernel"), skip = weight(m, "skip");
  auto c = torch::zeros_like(v);
  for (int64_t t = 0; t < x.size(1); ++t) {
    c.select(1, t) += skip * v.select(1, t);
    for (int64_t s = 0; s <= t; ++s) c.select(1, t) += kernel.select(1, t - s) * v.select(1, s);
  }
  if (gate != "none") {
    auto g = torch::matmul(x, weight(m, "g_proj.weight").t());
    c = c * (gate == "silu" ? g * torch::sigmoid(g) : g);
  }
  return torch::matmul(c, weight(m, "o_proj.weight").t());
}

TEST(FftConv, EqualsDirectCausalConvolution) {
  for (std::string gate : {"none", "linear", "silu"}) {
    auto m = make_f64("fft_conv", tiny_context(), {{"max_len", int64_t{40}}, {"gate", gate}});
    for (int64_t n : {1, 7, 16, 33}) {  // lengths on and off powers of two
      auto x = random_input(2, n, 16, n);
      auto expected = reference(m, x, gate);
      EXPECT_LT(max_abs_diff(m->forward(x), expected), 1e-12) << gate << " N=" << n;
      EXPECT_LT(max_abs_diff(run_steps(m, x), expected), 1e-12) << gate << " N=" << n;
    }
  }
}

TEST(FftConv, CostAndLengthBound) {
  auto m = make_f64("fft_conv", tiny_context(), {{"max_len", int64_t{40}}});
  auto cost = m->cost({2, 10, 8});
  EXPECT_DOUBLE_EQ(cost.matmul_flops, 3 * 2.0 * 2 * 10 * 16 * 16);  // v, g, o projections
  EXPECT_DOUBLE_EQ(cost.state_bytes, 2 * 10 * 16 * 8.0);
  EXPECT_GT(m->cost({2, 40, 8}).flops, cost.flops);
  EXPECT_THROW(m->forward(random_input(1, 41, 16)), std::invalid_argument);
}

}  // namespace
}  // namespace mixlab
