// fft_conv: the FFT path equals the direct causal convolution  c_t = Σ_{s≤t} K_{:,t-s} ⊙ v_s + D ⊙ v_t
// with the same filter, followed by the gate and the output projection.

#include "tests/zoo_helpers.h"

#include <cmath>

namespace mixlab {
namespace MIXLAB_UNITY_ID {
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

// Dynamic Spectrum Mixer (num_filters K, dynamic): every filter convolved directly, the weights
// a_t = softmax_j(W_2 GELU(W_1 m_t)) from the running mean m_t = (1/(t+1)) Σ_{s≤t} u_s, per position.
torch::Tensor dynamic_reference(const TokenMixerPtr& m, const torch::Tensor& x, int64_t filters, bool dynamic) {
  auto v = torch::matmul(x, weight(m, "v_proj.weight").t());
  auto kernels = weight(m, "kernel"), skip = weight(m, "skip");  // [K, d, L]
  const int64_t d = x.size(2);
  auto c = torch::zeros_like(v);
  auto input_sum = torch::zeros({x.size(0), d}, x.options());
  for (int64_t t = 0; t < x.size(1); ++t) {
    input_sum += x.select(1, t);
    torch::Tensor logits;  // [B, K, d]
    if (dynamic) {
      auto h = torch::matmul(input_sum / double(t + 1), weight(m, "mix_in.weight").t());
      h = exact_gelu(h);
      logits = torch::matmul(h, weight(m, "mix_out.weight").t()).view({x.size(0), filters, d});
    } else {
      logits = weight(m, "mix_logits").unsqueeze(0).expand({x.size(0), filters, d});
    }
    auto a = torch::exp(logits) / torch::exp(logits).sum(1, true);
    c.select(1, t) += skip * v.select(1, t);
    for (int64_t j = 0; j < filters; ++j)
      for (int64_t s = 0; s <= t; ++s)
        c.select(1, t) += a.select(1, j) * kernels[j].select(1, t - s) * v.select(1, s);
  }
  c = c * torch::matmul(x, weight(m, "g_proj.weight").t());
  return torch::matmul(c, weight(m, "o_proj.weight").t());
}

TEST(FftConv, DynamicFilterBankEqualsPerPositionMixture) {
  for (bool dynamic : {true, false}) {
    auto m = make_f64("fft_conv", tiny_context(), {{"max_len", int64_t{40}}, {"num_filters", int64_t{3}}, {"dynamic", dynamic}});
    {
      torch::NoGradGuard no_grad;
      for (auto& item : m->named_parameters())
        if (item.key() == "mix_logits") item.value().normal_();  // not uniform
    }
    for (int64_t n : {1, 7, 33}) {
      auto x = random_input(2, n, 16, n);
      auto expected = dynamic_reference(m, x, 3, dynamic);
      EXPECT_LT(max_abs_diff(m->forward(x), expected), 1e-12) << dynamic << " N=" << n;
      EXPECT_LT(max_abs_diff(run_steps(m, x), expected), 1e-12) << dynamic << " N=" << n;
    }
  }
}

TEST(FftConv, DynamicCostAndValidation) {
  auto m = make_f64("fft_conv", tiny_context(), {{"max_len", int64_t{40}}, {"num_filters", int64_t{4}}, {"dynamic", true}});
  auto cost = m->cost({2, 10, 8});
  const double tokens = 2 * 10, d = 16, h = 4;
  EXPECT_DOUBLE_EQ(cost.matmul_flops, 3 * 2.0 * tokens * d * d + 2.0 * tokens * h * (d + 4 * d));
  EXPECT_DOUBLE_EQ(cost.state_bytes, 2 * (10 + 1) * 16 * 8.0);  // past values and Σ u
  EXPECT_GT(cost.flops, make_f64("fft_conv", tiny_context(), {{"max_len", int64_t{40}}})->cost({2, 10, 8}).flops);
  EXPECT_THROW(Registry::global().create("fft_conv", tiny_context(), {{"dynamic", true}}), RegistryError);
}

}  // namespace
}  // namespace mixlab
