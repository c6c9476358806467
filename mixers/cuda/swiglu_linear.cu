// The gated MLP's first half of a decoding step as one kernel: the gate and up products on the
// batch's few rows (core/cuda/skinny_linear.cuh, with W's rows in pairs) and SwiGLU as their store
// (issue 13: the product and the gate were two kernels per layer):
//
//   g = bf16(x W_gᵀ),  u = bf16(x W_uᵀ),  hidden = bf16(g·σ(g)·u)       x: [B, d] -> [B, hidden]
//
// W is [2·hidden, d] with W_g's rows 8j..8j+7 followed by W_u's rows 8j..8j+7 for each j
// (mixlab::interleave_gate_up), so that one block holds the gate and up sums of the same 8 outputs.
// The reference is skinny_linear then swiglu (mixlab::swiglu_linear, mixers/swiglu.h); the store
// rounds g and u to bf16 as skinny_linear does and applies swiglu_forward_kernel's arithmetic
// (swiglu.cu) to them: the same bits.

#include <cuda_bf16.h>

#include "core/cuda/elements.cuh"
#include "core/cuda/skinny_linear.cuh"
#include "mixers/cuda/launch.h"

namespace mixlab::cuda::detail {
namespace {

struct SwigluStore {
  static constexpr bool kPairsTiles = true;
  __nv_bfloat16* hidden;  // [rows, out / 2]
  long long width;        // out / 2
  __device__ void operator()(long long row, long long o, float gate_sum, float up_sum) const {
    const float g = __bfloat162float(__float2bfloat16(gate_sum)), u = __bfloat162float(__float2bfloat16(up_sum));
    hidden[row * width + o] = __float2bfloat16(g * sigmoid(g) * u);
  }
};

}  // namespace

void swiglu_linear_bf16(const SkinnyLinearShape& shape, const void* x, const void* weight_pairs, void* hidden,
                        void* stream) {
  const SwigluStore store{static_cast<__nv_bfloat16*>(hidden), shape.out / 2};
  launch_skinny_linear("swiglu_linear", shape, x, weight_pairs, store, static_cast<cudaStream_t>(stream));
}

}  // namespace mixlab::cuda::detail
