#pragma once
// Small helpers shared by the mixer-zoo tests (linear_attention, MetaFormer baselines, gated_cnn,
// fft_conv, dtrnet, learned_topk): build an entry in float64 and read its weights by name.

#include "core/registry.h"

#include <gtest/gtest.h>

#include <cmath>

namespace mixlab::zoo_test {

inline MixerContext tiny_context(int64_t d_model = 16, int64_t n_heads = 2) {
  MixerContext context;
  context.d_model = d_model;
  context.n_heads = n_heads;
  context.init_std = 0.3;  // large enough that the mixing is far from trivial
  return context;
}

// The entry's initial weights come from a fixed seed: LibTorch seeds its default generator from a
// non-deterministic source, so an unseeded test would see other weights in every process.
inline TokenMixerPtr make_f64(const std::string& name, const MixerContext& context,
                              const std::map<std::string, ParamValue>& params = {}, uint64_t seed = 0) {
  torch::manual_seed(seed);
  auto mixer = Registry::global().create(name, context, params);
  mixer->to(torch::kFloat64);
  return mixer;
}

// A parameter or buffer by its registered name ("q_proj.weight", "mixing").
inline torch::Tensor weight(const TokenMixerPtr& mixer, const std::string& name) {
  for (const auto& item : mixer->named_parameters())
    if (item.key() == name) return item.value().detach();
  for (const auto& item : mixer->named_buffers())
    if (item.key() == name) return item.value().detach();
  ADD_FAILURE() << "no parameter or buffer named " << name;
  return {};
}

inline torch::Tensor random_input(int64_t batch, int64_t n, int64_t d, uint64_t seed = 7) {
  torch::manual_seed(seed);
  return torch::randn({batch, n, d}, torch::kFloat64);
}

// Runs step() token by token and stacks the outputs: [B, N, d].
inline torch::Tensor run_steps(const TokenMixerPtr& mixer, const torch::Tensor& x) {
  auto state = mixer->initial_state(x.size(0), x.options());
  std::vector<torch::Tensor> outputs;
  for (int64_t t = 0; t < x.size(1); ++t) outputs.push_back(mixer->step(x.select(1, t), state));
  return torch::stack(outputs, 1);
}

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

inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

}  // namespace mixlab::zoo_test
