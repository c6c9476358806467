#pragma once
// Entry points of the CUDA kernels (bindings live apart from the kernels, in *_binding.cpp).
// The CPU code calls these only under `#ifdef MIXLAB_WITH_CUDA` and only for CUDA tensors; each
// is differentiable (a torch::autograd::Function with a hand-written backward kernel).
//
// Attention shapes: q, k, v: [B, H, N, d_h], returns [B, H, N, d_h] in the op's dtype (under CUDA
// autocast the autocast dtype, as for a custom op; otherwise the inputs' common dtype).  q, k, v (and
// the output's gradient) are read in place in any layout with a unit stride in d_h and the other
// strides multiples of 16 bytes, e.g. the transposed heads of the q/k/v product; others are copied
// first.  The output is token-major ([B, N, H, d_h] in memory), so merging its heads is a view.

#include "core/input_norm.h"

#include <torch/torch.h>

#include <optional>
#include <string>

namespace mixlab::cuda {

// Whether the kernels take these inputs (CUDA, one shape, bf16/fp16 once cast to the op's dtype,
// head dim 64 or 128).  Callers run their reference otherwise; the entry points below refuse them.
bool sliding_window_supported(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v);
bool checkpoint_supported(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v);

// Sliding-window causal attention: query t sees keys t-window+1 .. t.
torch::Tensor sliding_window_attention(const torch::Tensor& q, const torch::Tensor& k,
                                       const torch::Tensor& v, int64_t window);

// SCOUT checkpoint attention: query t sees itself and the checkpoints p = mS+S-1 < t, one softmax.
torch::Tensor checkpoint_attention(const torch::Tensor& q, const torch::Tensor& k,
                                   const torch::Tensor& v, int64_t segment_size);

// One decode step's attention over a static cache's slots j < count with j ≤ ⌊t/divisor⌋
// (attend_to_prefix, attention/kv_cache.h): q [B, H, 1, d_h]; keys, values [B, H, C, d_h]
// contiguous, q's dtype (bf16, fp16 or float32), head dim 64 or 128; position: t, int64 [1] on
// q's device, read there.  Inference only (no autograd).  Returns [B, H, 1, d_h].
bool slot_attention_supported(const torch::Tensor& q, const torch::Tensor& keys, const torch::Tensor& values,
                              int64_t count, const torch::Tensor& position);
torch::Tensor slot_attention(const torch::Tensor& q, const torch::Tensor& keys, const torch::Tensor& values,
                             int64_t count, const torch::Tensor& position, int64_t divisor);

// Whether the sm90 kernels below run here (a compute-capability 9.x GPU, a build for sm_90a).
bool sm90_kernels_available();
// Hopper (sm_90a) building block: one 64 x 64 tile of attention's two products on wgmma
// (attention/cuda/sm90/tile_products.h): q, k, v [64, 64] bf16 on a compute-capability 9.x GPU ->
// S = q kᵀ, O = bf16(S) v and R = qᵀ k, each [64, 64] float32.  A test entry (no autograd).
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> sm90_tile_products(const torch::Tensor& q, const torch::Tensor& k,
                                                           const torch::Tensor& v);

// Hopper (sm_90a) sliding-window forward (attention/cuda/sm90/window_forward.h): q, k, v
// [B, H, N, d] bf16 (d 64 or 128) on a compute-capability 9.x GPU, window W ≥ 1 (≥ N: causal) ->
// o [B, H, N, d] bf16 and lse [B, H, N] float32.  Dispatched only with MIXLAB_SM90_ATTENTION=1 (below); their test and
// the kernel benchmark call them.
std::pair<torch::Tensor, torch::Tensor> sm90_window_forward(const torch::Tensor& q, const torch::Tensor& k,
                                                            const torch::Tensor& v, int64_t window);

// SCOUT checkpoint attention's forward on wgmma (attention/cuda/sm90/checkpoint_forward.h): q, k, v
// [B, H, N, d] bf16 (d 64 or 128), segment size S ≥ 1 -> o [B, H, N, d] bf16 and lse [B, H, N]
// float32.
std::pair<torch::Tensor, torch::Tensor> sm90_checkpoint_forward(const torch::Tensor& q, const torch::Tensor& k,
                                                                const torch::Tensor& v, int64_t segment);
// Its backward (attention/cuda/sm90/checkpoint_backward.h): q, k, v, o, dout [B, H, N, d] bf16 (d 64
// or 128) and the forward's lse [B, H, N] float32 -> dq, dk, dv [B, H, N, d] bf16.
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> sm90_checkpoint_backward(
    const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& o,
    const torch::Tensor& dout, const torch::Tensor& lse, int64_t segment);
// The sliding window's backward (attention/cuda/sm90/window_backward.h): q, k, v, o, dout [B, H, N, d] bf16 (d 64
// or 128) and the forward's lse [B, H, N] float32 -> dq, dk, dv [B, H, N, d] bf16.
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> sm90_window_backward(
    const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& o,
    const torch::Tensor& dout, const torch::Tensor& lse, int64_t window);

// The sm90 kernels as differentiable ops (attention/cuda/sm90/autograd.cpp), which
// sliding_window_attention and checkpoint_attention below run instead of the sm_80 kernels when
// sm90_attention_wanted(q, scheme): q bf16 with head dim 64 or 128 on a Hopper with a build for
// sm_90a, and the scheme chosen by MIXLAB_SM90_ATTENTION (unset: checkpoint only; none / 0; all / 1;
// window; checkpoint; anything else is an error).  q, k, v [B, H, N, d] bf16 -> o [B, H, N, d] bf16.
enum class Sm90Scheme { window, checkpoint };
bool sm90_attention_wanted(const torch::Tensor& q, Sm90Scheme scheme);
// MIXLAB_SM90_ATTENTION set to `value` (nullptr: unset) for one scope and put back as it was at its
// end, also when the scope throws: e.g. "none" to run the sm_80 kernels on a Hopper (their tests,
// kernel_bench's sm_80 rows).
class ScopedSm90Choice {
 public:
  explicit ScopedSm90Choice(const char* value);
  ~ScopedSm90Choice();
  ScopedSm90Choice(const ScopedSm90Choice&) = delete;
  ScopedSm90Choice& operator=(const ScopedSm90Choice&) = delete;

 private:
  std::optional<std::string> saved_;  // the value before, if it was set
};
torch::Tensor sm90_sliding_window_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                            int64_t window);
torch::Tensor sm90_checkpoint_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                        int64_t segment);

// RoPE, rotate-half (attention/rope.h), fused (rope.cu), differentiable (the backward is the same
// kernel with the rotation transposed, R(θ)ᵀ = R(−θ)):
//   y = x·cos + rotate_half(x)·sin,   rotate_half([a, b]) = [−b, a]
// x: [B, H, N, d_h], any strides (the heads of a projection, transposed; a unit stride in d_h is
// read in place); cos, sin: [N, d_h].  Returns [B, H, N, d_h] in x's layout and in the dtype of x·cos,
// as the reference: not the autocast dtype, since RoPE is no autocast op.
// Whether the kernel takes these: CUDA, even d_h, x bf16 / fp16 / float32, tables of x's dtype or
// float32 (bf16 / fp16 x beside float32 tables, under autocast), the tables asking no gradient.
bool rope_supported(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// One decode step's RoPE and cache write, fused (rope_into_cache.cu; the reference is
// mixlab::rope_into_cache, attention/kv_cache.h), at the position t and cache slot m held on the device:
//   returns q' = RoPE(q, t): [B, H, 1, d_h];  keys[:, :, m] ← RoPE(k, t);  values[:, :, m] ← v
// qkv: [B, 3, H, 1, d_h] (q, k, v: the stacked projection's output, unit stride in d_h); position,
// slot: int64 [1] on qkv's device; cos, sin: [capacity, d_h] contiguous (rows of positions
// 0 .. capacity−1); keys, values: [B, H, slots, d_h], unit stride in d_h.  Every tensor of one dtype,
// bf16, fp16 or float32; even d_h; no gradient asked (the caches are written in place).
bool rope_into_cache_supported(const torch::Tensor& qkv, const torch::Tensor& position, const torch::Tensor& cos,
                               const torch::Tensor& sin, const torch::Tensor& slot, const torch::Tensor& keys,
                               const torch::Tensor& values);
torch::Tensor rope_into_cache(const torch::Tensor& qkv, const torch::Tensor& position, const torch::Tensor& cos,
                              const torch::Tensor& sin, const torch::Tensor& slot, torch::Tensor& keys,
                              torch::Tensor& values);

// The q, k, v product with the above as its store (rope_linear_into_cache.cu), bf16 only; taken by
// mixlab::rope_linear_into_cache (attention/kv_cache.h) where rope_linear_into_cache_supported
// passes: x and weight_pairs as core's skinny_linear takes them (x [B, d], weight [3·H·d_h, d], no
// bias, no gradient), the weight's rows paired by mixlab::pair_rope_halves (d_h a multiple of 16),
// the tables, caches, position and slot as rope_into_cache takes them.  Returns q' [B, H, 1, d_h].
// With a norm, x is h and the product reads RMSNorm(h)·g (core/input_norm.h).
bool rope_linear_into_cache_supported(const torch::Tensor& x, const torch::Tensor& weight_pairs, int64_t heads,
                                      const torch::Tensor& position, const torch::Tensor& cos, const torch::Tensor& sin,
                                      const torch::Tensor& slot, const torch::Tensor& keys, const torch::Tensor& values,
                                      const InputNorm& norm = {});
torch::Tensor rope_linear_into_cache(const torch::Tensor& x, const torch::Tensor& weight_pairs, int64_t heads,
                                     const torch::Tensor& position, const torch::Tensor& cos, const torch::Tensor& sin,
                                     const torch::Tensor& slot, torch::Tensor& keys, torch::Tensor& values,
                                     const InputNorm& norm = {});

}  // namespace mixlab::cuda
