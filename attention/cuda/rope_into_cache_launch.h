#pragma once
// Plain C++ launcher of the decode step's fused RoPE and cache write (attention/cuda/
// rope_into_cache.cu; no LibTorch here, so the .cu compiles with nvcc alone).  rope_into_cache_
// binding.cpp checks shapes and dtypes and calls it; the reference is mixlab::rope_into_cache's
// composed path (attention/kv_cache.cpp).
//
// One token per sequence at position t (read on the device), its projections q, k, v of each
// (b, h), the RoPE table rows c = cos[t], s = sin[t] and a cache slot m (read on the device):
//
//   q_out[b, h]          = RoPE(q[b, h], t)
//   keys[b, h, m]       ← RoPE(k[b, h], t)
//   values[b, h, m]     ← v[b, h]
//
// RoPE as rope_launch.h: rotate-half, per row x = [x1, x2] (halves of d_h/2)
//   y1 = x1·c1 − x2·s1,   y2 = x2·c2 + x1·s2
// in float32 with every product and sum rounded (no FMA), the result rounded once to the element
// type.  No other slot of the caches is read or written.

#include <cstdint>

#include "attention/cuda/rope_launch.h"
#include "core/cuda/skinny_linear_launch.h"

namespace mixlab::cuda::detail {

// qkv: [B, 3, H, 1, d_h] at element strides qkv_stride over (b, part, h) (part 0 q, 1 k, 2 v),
// unit stride in d_h; cos, sin: [capacity, d_h] contiguous; keys, values: [B, H, slots, d_h] at
// strides key_stride / value_stride over (b, h, slot), unit stride in d_h; q_out: [B, H, 1, d_h]
// contiguous.  Every tensor of one element type.
struct RopeIntoCacheShape {
  RopeElement element = RopeElement::f32;
  int batch = 0, heads = 0, head_dim = 0;  // head_dim even
  long long capacity = 0;                  // table rows: t must lie in [0, capacity)
  long long slots = 0;                     // cache slots: m must lie in [0, slots)
  long long qkv_stride[3] = {0, 0, 0};
  long long key_stride[3] = {0, 0, 0};
  long long value_stride[3] = {0, 0, 0};
};

// position: t, slot: m, one int64 each on the device, read there (a CUDA graph replays the launch at
// every position).  A t or m out of range traps on the device (as an out-of-range index_select's
// device assert would).  Needs B·H·d_h/2 < 2^31.  Throws std::invalid_argument for an unsupported
// shape, std::runtime_error when the launch fails.
void rope_into_cache(const RopeIntoCacheShape& shape, const void* qkv, const int64_t* position, const void* cos,
                     const void* sin, const int64_t* slot, void* q_out, void* keys, void* values, void* stream);

// The q, k, v product and the above as its store (rope_linear_into_cache.cu), bf16 only: x [rows =
// B, d] (linear.in = d), W [3·H·d_h, d] with rows paired as mixlab::pair_rope_halves lays them
// (linear.out = 3·H·d_h, d_h a multiple of 16); shape as above (element bf16; qkv_stride unused).
void rope_linear_into_cache_bf16(const SkinnyLinearShape& linear, const RopeIntoCacheShape& shape, const void* x,
                                 const void* weight_pairs, const int64_t* position, const void* cos, const void* sin,
                                 const int64_t* slot, void* q_out, void* keys, void* values, void* stream);

}  // namespace mixlab::cuda::detail
