#pragma once
// The key / value caches of single-token decoding, written in place.  Concatenating the new
// key to the cache copies the whole cache at every step: O(t) bytes at step t, O(N²) over a
// generation of N tokens, which is what made decoding slow at long contexts.  Here a cache is the
// first t slots of a buffer [B, H, C, d_h] whose capacity C doubles when full (amortised O(1)
// bytes per step); MixerState keeps the view of the slots written (what MixerState::bytes()
// counts: the state, not the spare capacity).
//
//   append_to_cache(cache, x):          slots t.. ← x (x: m ≥ 1 slots); returns slots 0..t+m−1
//   append_to_window(cache, x, t, W):   a ring of W slots, slot t mod W ← x; returns the
//                                       min(t+1, W) slots written, in slot order.  Softmax attention
//                                       over a set of keys does not depend on their order, and each
//                                       key already carries the RoPE phase of its position.
//
// The buffer is reused only when nothing else holds the cache's view (a copy of the state, a
// graph that autograd will differentiate): otherwise the cache is copied into a fresh buffer, so
// a copied state never sees the other's writes.

#include "core/input_norm.h"

#include <torch/torch.h>

namespace mixlab {

// cache: [B, H, t, d_h] (t ≥ 0; any tensor, e.g. the empty cache of initial_state);
// x: [B, H, m, d_h]; returns [B, H, t + m, d_h].
torch::Tensor append_to_cache(const torch::Tensor& cache, const torch::Tensor& x);
// x: [B, H, 1, d_h]; position: t, the absolute position of x; window: W ≥ 1.
torch::Tensor append_to_window(const torch::Tensor& cache, const torch::Tensor& x, int64_t position, int64_t window);

}  // namespace mixlab

namespace mixlab {

// Static caches, for decoding captured as a CUDA graph (TokenMixer::static_step): a buffer
// [B, H, C, d_h] preallocated for C slots and written at a slot held in a device tensor, so no
// step resizes, reallocates or asks the host where it is.

// buffer[:, :, slot] ← x.  buffer: [B, H, C, d_h]; slot: int64 [1] on its device; x: [B, H, 1, d_h].
void write_slot(torch::Tensor& buffer, const torch::Tensor& slot, const torch::Tensor& x);

// One decode step's RoPE and cache write at the position t and slot m held on the device (no host
// sync: a CUDA graph replays the step at every position):
//   q' = RoPE(q, t) (returned);   keys[:, :, m] ← RoPE(k, t);   values[:, :, m] ← v
// RoPE rotate-half with the table rows at t (attention/rope.h).  qkv: [B, 3, H, 1, d_h], the
// stacked projection's q, k, v of one token; position, slot: int64 [1] on qkv's device; cos, sin:
// [capacity, d_h], the rows of positions 0 .. capacity−1; keys, values: [B, H, slots, d_h].
// Returns [B, H, 1, d_h].  On CUDA one kernel where cuda::rope_into_cache_supported takes the inputs
// (attention/cuda/kernels.h; "rope_into_cache=kernel"); otherwise the composed reference: the two
// table rows, apply_rope on q and k, write_slot of k and v ("rope_into_cache=reference").
torch::Tensor rope_into_cache(const torch::Tensor& qkv, const torch::Tensor& position, const torch::Tensor& cos,
                              const torch::Tensor& sin, const torch::Tensor& slot, torch::Tensor& keys,
                              torch::Tensor& values);

// [W_q; W_k; W_v]: [3·H·d_h, d] -> the same rows with, for each (part, head) and each block of 8
// dims i = 8k..8k+7 of the first half, those rows followed by the rows of dims i + d_h/2 (d_h a
// multiple of 16): the layout rope_linear_into_cache reads, in which one block of 16 rows holds
// both halves of 8 rotation pairs.
torch::Tensor pair_rope_halves(const torch::Tensor& qkv_weight, int64_t heads, int64_t head_dim);

// The q, k, v projections of one token and rope_into_cache as one op: qkv = x_t W_pairsᵀ with
// W_pairs = pair_rope_halves([W_q; W_k; W_v]), then rope_into_cache.  x_t: [B, d]; the rest as
// rope_into_cache.  Returns q' [B, H, 1, d_h].  On CUDA with bf16 one kernel (the product with RoPE
// and the cache write as its store; "rope_linear_into_cache=kernel"); otherwise skinny_linear, the
// pairs put back, rope_into_cache ("rope_linear_into_cache=reference").  With a norm, x_t is h and
// the product reads RMSNorm(h)·g (core/input_norm.h: inside the kernel).
torch::Tensor rope_linear_into_cache(const torch::Tensor& x_t, const torch::Tensor& weight_pairs, int64_t heads,
                                     const torch::Tensor& position, const torch::Tensor& cos, const torch::Tensor& sin,
                                     const torch::Tensor& slot, torch::Tensor& keys, torch::Tensor& values,
                                     const InputNorm& norm = {});

// Single-query attention over the slots a step at position t attends to: j < count and
// j ≤ ⌊t / divisor⌋ (a step writes its own key and value into the cache first, so it is one of them):
//   o = Σ_j softmax_j(s_j) v_j,  s_j = q·k_j / √d_h over {j < count : j ≤ ⌊t/divisor⌋}
// attention and swa: divisor 1 (slot j holds token j, or a ring slot once every one is written);
// SCOUT's checkpoints: divisor S (slot m holds segment m).  q: [B, H, 1, d_h]; keys, values:
// [B, H, C, d_h] (C ≥ count ≥ 1); position: int64 [1] on q's device (t ≥ 0).  Returns [B, H, 1, d_h].
// On CUDA one kernel that reads t on the device and only the slots attended to
// (attention/cuda/slot_attention.h); elsewhere the mask written out and a masked softmax.
torch::Tensor attend_to_prefix(const torch::Tensor& q, const torch::Tensor& keys, const torch::Tensor& values,
                               int64_t count, const torch::Tensor& position, int64_t divisor = 1);

}  // namespace mixlab
