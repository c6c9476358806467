#pragma once
// Helpers every mixer test shares: a small context, an entry built in float64, its weights by
// name, a random input, step()-by-step decoding and the largest elementwise difference.

#include "core/registry.h"

#include <gtest/gtest.h>

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace mixlab::testing {

// A small model context; init_std well above the default 0.02 so that the mixing is far from
// trivial (attention sharp enough that a wrong mask shows).
inline MixerContext tiny_context(int64_t d_model = 16, int64_t n_heads = 2, double init_std = 0.3) {
  MixerContext context;
  context.d_model = d_model;
  context.n_heads = n_heads;
  context.init_std = init_std;
  return context;
}

// An entry in float64, its weights drawn from the generator as it stands.
inline TokenMixerPtr make_float64(const std::string& name, const MixerContext& context,
                                  const std::map<std::string, ParamValue>& params = {}) {
  auto mixer = Registry::global().create(name, context, params);
  mixer->to(torch::kFloat64);
  return mixer;
}

// The same with its initial weights from a fixed seed: LibTorch seeds its default generator from
// a non-deterministic source, so an unseeded test would see other weights in every process.
inline TokenMixerPtr make_f64(const std::string& name, const MixerContext& context,
                              const std::map<std::string, ParamValue>& params = {}, uint64_t seed = 0) {
  torch::manual_seed(seed);
  return make_float64(name, context, params);
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

// Every parameter by its registered name, detached (what a reference implementation reads).
inline std::map<std::string, torch::Tensor> weights_by_name(const TokenMixerPtr& mixer) {
  std::map<std::string, torch::Tensor> weights;
  for (const auto& item : mixer->named_parameters()) weights[item.key()] = item.value().detach();
  return weights;
}

// x ~ N(0, 1): [batch, n, d] in float64, from a fixed seed.
inline torch::Tensor random_input(int64_t batch, int64_t n, int64_t d, uint64_t seed = 7) {
  torch::manual_seed(seed);
  return torch::randn({batch, n, d}, torch::kFloat64);
}

// Decode N tokens one at a time with step() from `state` and stack the outputs: [B, N, d].
inline torch::Tensor decode_all(TokenMixer& mixer, const torch::Tensor& x, MixerState& state) {
  std::vector<torch::Tensor> outputs;
  for (int64_t t = 0; t < x.size(1); ++t) outputs.push_back(mixer.step(x.select(1, t), state));
  return torch::stack(outputs, 1);
}

// The same from a fresh state: [B, N, d].
inline torch::Tensor run_steps(const TokenMixerPtr& mixer, const torch::Tensor& x) {
  auto state = mixer->initial_state(x.size(0), x.options());
  return decode_all(*mixer, x, state);
}

// max |a - b| over all elements.
inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

}  // namespace mixlab::testing
