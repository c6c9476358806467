// Mamba's input stage of one decoding step as one kernel: the in-projection on the batch's few
// rows (core/cuda/skinny_linear.cuh) with the causal depthwise convolution's step and its SiLU as
// the store of each product (issue 13: the step was one kernel more per layer, a few µs each):
//
//   xz[b, o] = bf16(Σ_k x[b, k] W[o, k] + b_in[o])                                   o < out
//   u[b, j]  = bf16(SiLU(b_conv[j] + Σ_{i<K-1} w[j, i] h[b, j, i] + w[j, K-1] xz[b, j]))   j < C
//   h[b, j]  ← (h[b, j, 1..K-2], xz[b, j])                                              (in place)
//
// The reference is the two ops in turn, mixlab::skinny_linear then
// mixlab::causal_depthwise_conv_step (mixers/linear_conv_step.h); the store below is the
// causal_conv_step kernel's arithmetic (decode_step.cu) on the rounded xz: the same bits.  Each
// (b, o) is stored by one thread, so each history row has one writer.

#include <cuda_bf16.h>

#include "core/cuda/elements.cuh"
#include "core/cuda/skinny_linear.cuh"
#include "mixers/cuda/launch.h"

namespace mixlab::cuda::detail {
namespace {

struct ConvStepStore {
  const __nv_bfloat16* bias;  // [out] or null
  __nv_bfloat16* xz;          // [rows, out]
  long long out;
  __nv_bfloat16* history;             // [rows, C, K-1], oldest first
  const __nv_bfloat16* conv_weight;   // [C, K]
  const __nv_bfloat16* conv_bias;     // [C] or null
  __nv_bfloat16* u;                   // [rows, C]
  int channels, taps;

  __device__ void operator()(long long row, long long o, float sum) const {
    if (bias) sum += __bfloat162float(bias[o]);
    const __nv_bfloat16 x = __float2bfloat16(sum);
    xz[row * out + o] = x;
    if (o >= channels) return;
    __nv_bfloat16* h = history + (row * channels + o) * (taps - 1);
    const __nv_bfloat16* w = conv_weight + o * taps;
    float c = conv_bias ? __bfloat162float(conv_bias[o]) : 0.f;
    for (int i = 0; i < taps - 1; ++i) c += __bfloat162float(w[i]) * __bfloat162float(h[i]);
    c += __bfloat162float(w[taps - 1]) * __bfloat162float(x);
    for (int i = 0; i + 1 < taps - 1; ++i) h[i] = h[i + 1];
    h[taps - 2] = x;
    u[row * channels + o] = __float2bfloat16(c * sigmoid(c));
  }
};

}  // namespace

void linear_conv_step(const LinearConvStepShape& shape, const void* x, const void* weight, const void* bias, void* xz,
                      void* history, const void* conv_weight, const void* conv_bias, void* u, void* stream) {
  using bf16 = __nv_bfloat16;
  const ConvStepStore store{static_cast<const bf16*>(bias),        static_cast<bf16*>(xz),
                            shape.linear.out,                      static_cast<bf16*>(history),
                            static_cast<const bf16*>(conv_weight), static_cast<const bf16*>(conv_bias),
                            static_cast<bf16*>(u),                 shape.channels,
                            shape.taps};
  launch_skinny_linear("linear_conv_step", shape.linear, x, weight, store, static_cast<cudaStream_t>(stream));
}

}  // namespace mixlab::cuda::detail
