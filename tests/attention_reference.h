#pragma once
// Naive float64 references for the attention schemes, written straight from a dense boolean mask
// M[t, j] ("query t may attend to key j"): the oracle every blockwise forward is checked against.

#include "attention/rope.h"
#include "core/token_mixer.h"
#include "tests/mixer_test_helpers.h"

#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <limits>

namespace mixlab::testing {

// The context of the attention tests: sharper attention than the default init_std 0.02, so
// that a wrong mask shows.
inline MixerContext masked_attention_context(int64_t d_model = 32, int64_t n_heads = 4) {
  return tiny_context(d_model, n_heads, 0.2);
}

// A dense [N, N] mask from a rule allowed(t, j), filled entry by entry.
inline torch::Tensor dense_mask(int64_t n, const std::function<bool(int64_t, int64_t)>& allowed) {
  auto mask = torch::zeros({n, n}, torch::kBool);
  auto m = mask.accessor<bool, 2>();
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < n; ++j) m[t][j] = allowed(t, j);
  return mask;
}

// o = softmax(q kᵀ / √d_h, masked by M) v in float64; q, k, v: [B, H, N, d_h], mask: [N, N].
// Every row of the mask must allow at least one key.
inline torch::Tensor masked_attention(const torch::Tensor& q, const torch::Tensor& k,
                                      const torch::Tensor& v, const torch::Tensor& mask) {
  auto q64 = q.to(torch::kFloat64), k64 = k.to(torch::kFloat64), v64 = v.to(torch::kFloat64);
  auto scores = torch::matmul(q64, k64.transpose(-2, -1)) / std::sqrt(double(q.size(-1)));
  scores = scores.masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity());
  return torch::matmul(torch::softmax(scores, -1), v64);
}

// The whole multi-head layer from its HF-named weights:
//   y = W_o merge_h( core( RoPE(x W_qᵀ), RoPE(x W_kᵀ), x W_vᵀ ) ),   RoPE at positions 0..N-1.
inline torch::Tensor multi_head_reference(
    torch::nn::Module& mixer, const torch::Tensor& x, int64_t n_heads, double rope_theta,
    const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&,
                                      const torch::Tensor&)>& core) {
  auto params = mixer.named_parameters();
  const int64_t batch = x.size(0), n = x.size(1), d = x.size(2), head_dim = d / n_heads;
  auto heads = [&](const char* name) {  // [B, N, d] -> [B, H, N, d_h]
    return torch::matmul(x, params[name].t()).view({batch, n, n_heads, head_dim}).transpose(1, 2);
  };
  auto [cos, sin] = rope_tables(torch::arange(n), head_dim, rope_theta, x.options());
  auto q = apply_rope(heads("q_proj.weight"), cos, sin);
  auto k = apply_rope(heads("k_proj.weight"), cos, sin);
  auto v = heads("v_proj.weight");
  auto o = core(q, k, v).transpose(1, 2).reshape({batch, n, d});
  return torch::matmul(o, params["o_proj.weight"].t());
}

// Copy every parameter of `from` into the same-named parameter of `to`.
inline void copy_parameters(torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  auto source = from.named_parameters();
  for (auto& item : to.named_parameters()) item.value().copy_(source[item.key()]);
}

}  // namespace mixlab::testing
