// The attention sublayer's first half of a decoding step as one kernel: the q, k, v projections on
// the batch's few rows (core/cuda/skinny_linear.cuh, with W's rows in pairs) and RoPE with the
// cache write as their store (issue 13: the product and rope_into_cache were two kernels per
// attention layer):
//
//   [q | k | v] = bf16(x [W_q; W_k; W_v]ᵀ),  then rope_into_cache (rope_into_cache_launch.h)
//
// W is [3·H·d_h, d] with, for each (part, head) and each block of 8 dims i = 8k..8k+7 of the first
// half, those rows followed by the rows of dims i + d_h/2 (mixlab::pair_rope_halves): one block of
// the product holds both halves x1, x2 of the same 8 rotation pairs.  The reference is
// skinny_linear, the pairs put back, rope_into_cache (mixlab::rope_linear_into_cache,
// attention/kv_cache.h); the store rounds q, k, v to bf16 as skinny_linear does and rotates them
// with rope_into_cache.cu's arithmetic (every product and sum rounded, no FMA): the same bits.

#include <cuda_bf16.h>

#include "attention/cuda/rope_into_cache_launch.h"
#include "core/cuda/skinny_linear.cuh"

namespace mixlab::cuda::detail {
namespace {

struct RopeCacheStore {
  static constexpr bool kPairsTiles = true;
  RopeIntoCacheShape s;
  const int64_t* position;                // t, on the device
  const int64_t* slot;                    // m, on the device
  const __nv_bfloat16 *cos, *sin;         // [capacity, d_h]
  __nv_bfloat16 *q_out, *keys, *values;   // [B, H, 1, d_h]; [B, H, slots, d_h] at the shape's strides

  // Pair p of row b: dims i and i + d_h/2 of (part, h), p = ((part·H + h)·d_h/2 + i).
  __device__ void operator()(long long b, long long p, float first, float second) const {
    const long long half = s.head_dim / 2, i = p % half, part_head = p / half;
    const long long h = part_head % s.heads, part = part_head / s.heads;
    const float x1 = __bfloat162float(__float2bfloat16(first)), x2 = __bfloat162float(__float2bfloat16(second));
    const long long t = *position, m = *slot;
    if (t < 0 || t >= s.capacity || m < 0 || m >= s.slots) __trap();
    __nv_bfloat16* out;
    if (part == 2) {  // v: into value slot m as it is
      out = values + b * s.value_stride[0] + h * s.value_stride[1] + m * s.value_stride[2];
      out[i] = __float2bfloat16(x1);
      out[i + half] = __float2bfloat16(x2);
      return;
    }
    out = part == 0 ? q_out + (b * s.heads + h) * s.head_dim
                    : keys + b * s.key_stride[0] + h * s.key_stride[1] + m * s.key_stride[2];
    const long long row = t * s.head_dim;
    const float c1 = __bfloat162float(cos[row + i]), c2 = __bfloat162float(cos[row + i + half]);
    const float s1 = __bfloat162float(sin[row + i]), s2 = __bfloat162float(sin[row + i + half]);
    out[i] = __float2bfloat16(__fsub_rn(__fmul_rn(x1, c1), __fmul_rn(x2, s1)));
    out[i + half] = __float2bfloat16(__fadd_rn(__fmul_rn(x2, c2), __fmul_rn(x1, s2)));
  }
};

}  // namespace

void rope_linear_into_cache_bf16(const SkinnyLinearShape& linear, const RopeIntoCacheShape& shape, const void* x,
                                 const void* weight_pairs, const int64_t* position, const void* cos, const void* sin,
                                 const int64_t* slot, void* q_out, void* keys, void* values, void* stream) {
  using bf16 = __nv_bfloat16;
  const RopeCacheStore store{shape,
                             position,
                             slot,
                             static_cast<const bf16*>(cos),
                             static_cast<const bf16*>(sin),
                             static_cast<bf16*>(q_out),
                             static_cast<bf16*>(keys),
                             static_cast<bf16*>(values)};
  launch_skinny_linear("rope_linear_into_cache", linear, x, weight_pairs, store, static_cast<cudaStream_t>(stream));
}

}  // namespace mixlab::cuda::detail
