#pragma once
// The mixer-zoo tests (linear_attention, MetaFormer baselines, gated_cnn, fft_conv, dtrnet,
// learned_topk): the shared helpers of tests/mixer_test_helpers.h, and references two of them use.

#include "tests/mixer_test_helpers.h"

#include <cmath>

namespace mixlab::zoo_test {

using testing::decode_all;
using testing::make_f64;
using testing::max_abs_diff;
using testing::random_input;
using testing::run_steps;
using testing::tiny_context;
using testing::weight;

// GELU(x) = x · Φ(x), Φ the standard normal CDF (the exact form, not the tanh approximation).
inline torch::Tensor exact_gelu(const torch::Tensor& x) { return 0.5 * x * (1.0 + torch::erf(x / std::sqrt(2.0))); }

// A causal depthwise convolution written per output position:
//   c_t = bias + Σ_{lag<k, lag≤t} kernel[:, k-1-lag] ⊙ a_{t-lag};   a: [B, N, C], kernel: [C, k] or [C, 1, k].
inline torch::Tensor loop_causal_conv(const torch::Tensor& a, const torch::Tensor& kernel, const torch::Tensor& bias) {
  auto taps = kernel.dim() == 3 ? kernel.squeeze(1) : kernel;
  const int64_t n = a.size(1), k = taps.size(1);
  auto out = torch::zeros_like(a);
  for (int64_t t = 0; t < n; ++t) {
    out.select(1, t) += bias;
    for (int64_t lag = 0; lag < k && lag <= t; ++lag) out.select(1, t) += taps.select(1, k - 1 - lag) * a.select(1, t - lag);
  }
  return out;
}

}  // namespace mixlab::zoo_test
