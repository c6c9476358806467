#pragma once
// Shared pieces of the attention family: the four bias-free projections named as Hugging Face
// names them (q_proj, k_proj, v_proj, o_proj; weights stored [out, in]), head split/merge, and
// the parameters every attention entry takes.

#include "attention/rope.h"
#include "core/registry.h"

#include <limits>

namespace mixlab {

// A masked score: exp(-inf) = 0 in the softmax.
inline constexpr double kNegativeInfinity = -std::numeric_limits<double>::infinity();

// The multi-head projections of one attention layer.  d_model = n_heads * head_dim.
class MultiHeadProjections {
 public:
  MultiHeadProjections() = default;
  // Registers q_proj, k_proj, v_proj, o_proj on `owner`, initialised N(0, init_std).
  void create(torch::nn::Module& owner, const MixerContext& context, double rope_theta);

  // x: [B, N, d] -> q, k, v: [B, H, N, d_h], q and k rotated at absolute positions 0..N-1
  // (or `positions` when given: [N]).
  struct Heads { torch::Tensor q, k, v; };
  Heads project(const torch::Tensor& x, const torch::Tensor& positions = {});
  // One token at absolute position `position`: x_t: [B, d] -> q, k, v: [B, H, 1, d_h].
  Heads project_one(const torch::Tensor& x_t, int64_t position);
  // Static decoding: adds to `state` the constants of one decoding session, derived once from the
  // weights (MixerState::constants): [W_q; W_k; W_v] [3d, d], as "qkv_pairs" with each head's
  // rotation halves paired (pair_rope_halves, attention/kv_cache.h) where d_h is a multiple of 16,
  // else as "qkv_weight"; and the RoPE rows of positions 0 .. capacity−1, "rope_cos" and "rope_sin"
  // [capacity, d_h].
  void add_static_constants(MixerState& state, int64_t capacity, const torch::TensorOptions& options) const;
  // One token at the position t held in a device tensor (int64 [1]), from those constants, into a
  // static cache at the slot m held in another (int64 [1]):
  //   [q | k | v] = x_t [W_q; W_k; W_v]ᵀ   (one product)
  //   keys[:, :, m] ← RoPE(k, t),  values[:, :, m] ← v,  returns RoPE(q, t)
  // (rope_linear_into_cache on "qkv_pairs", else skinny_linear and rope_into_cache,
  // attention/kv_cache.h: on CUDA one kernel, else two).  x_t: [B, d]; keys, values:
  // [B, H, slots, d_h] -> q: [B, H, 1, d_h].  With a norm, x_t is h_t, normalised by the product
  // (core/input_norm.h).
  torch::Tensor project_into_cache(const torch::Tensor& x_t, const torch::Tensor& position, const torch::Tensor& slot,
                                   const MixerState& state, torch::Tensor& keys, torch::Tensor& values,
                                   const InputNorm& norm = {}) const;
  // A decode state with empty "key_cache" and "value_cache": [B, H, 0, d_h] each.
  MixerState empty_kv_cache(int64_t batch, const torch::TensorOptions& options) const;
  // A static decode state: "key_cache" and "value_cache" of `slots` zeroed slots, [B, H, slots, d_h].
  MixerState static_kv_cache(int64_t batch, int64_t slots, const torch::TensorOptions& options) const;
  // [B, H, N, d_h] -> o_proj(merge heads) : [B, N, d]
  torch::Tensor output(const torch::Tensor& heads);
  // One token's heads [B, H, 1, d_h] merged, [B, d], with o_proj's weight and bias: before o_proj.
  UnprojectedStep unprojected_output(const torch::Tensor& heads) const;

  int64_t n_heads = 0, head_dim = 0, d_model = 0;
  // Whether the static constants hold the q, k, v weight with its rotation halves paired.
  bool pairs_rope_halves() const { return head_dim % 16 == 0; }
  double rope_theta = 1e4;
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  Heads project_with(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);
 public:

  // Projection FLOPs for N tokens and B sequences: 4 products of d x d, 2 FLOPs each.
  double projection_flops(int64_t batch, int64_t seq_len) const {
    return 8.0 * batch * seq_len * static_cast<double>(d_model) * d_model;
  }
};

// Parameters common to every attention entry.
ParamSpec rope_theta_param(double default_theta = 10000.0);
// Checks that d_model is divisible by n_heads with an even head dimension.
void validate_heads(const MixerContext& context, const MixerParams& params);

}  // namespace mixlab
