#pragma once
// Plain C++ launchers of the fused causal depthwise convolution + SiLU (causal_conv_silu.cu; no
// LibTorch here; the binding is causal_conv_silu_binding.cpp).
//
//   c[b, e, t] = bias[e] + Σ_{i=0}^{K-1} w[e, i] · x[b, t − (K−1−i), e]      (x at t < 0 is 0)
//   u[b, e, t] = SiLU(c) = c · σ(c)
//
// backward, with g = du and c recomputed from x (not saved):
//   dc[b, t, e] = g[b, e, t] · σ(c) · (1 + c · (1 − σ(c)))
//   dx[b, t, e] = Σ_i w[e, i] · dc[b, t + (K−1−i), e]                         (dc at t ≥ N is 0)
//   dw[e, i]    = Σ_{b,t} dc[b, t, e] · x[b, t − (K−1−i), e],   dbias[e] = Σ_{b,t} dc[b, t, e]
//
// Operands:
//   x:     [B, N, E] of `element`, element strides x_batch_stride, x_time_stride, channel stride 1
//          (e.g. the first E columns of in_proj's [B, N, 2E] output)
//   u, g:  [B, E, N] contiguous of `element`;   dx: [B, N, E] contiguous of `element`
//   weight [E, K] (Conv1d's [E, 1, K]), bias [E] (null: none): contiguous, of `param`; dweight,
//   dbias likewise (either null: not written)
//   partial: float32 scratch of causal_conv_silu_partial_floats(shape), the blocks' sums of dw and
//   dbias, added in a fixed order by a second kernel (the same bits on every run).
// Arithmetic in float32.

#include "mixers/cuda/launch.h"

namespace mixlab::cuda::detail {

constexpr int kConvSiluMaxKernel = 8;  // K the kernels take (shared-memory halo and dw accumulators)

struct ConvSiluShape {
  ScanElement element = ScanElement::f32;  // x, u, g, dx
  ScanElement param = ScanElement::f32;    // weight, bias, dweight, dbias: f32 or `element`
  int batch = 0, time = 0, channels = 0, kernel = 0;
  long long x_batch_stride = 0, x_time_stride = 0;
};

// Why the launchers would refuse `shape`; empty when they take it.
const char* causal_conv_silu_unsupported(const ConvSiluShape& shape);

void causal_conv_silu_forward(const ConvSiluShape& shape, const void* x, const void* weight, const void* bias,
                              void* u, void* stream);

// Floats of `partial` the backward needs on the current device.
long long causal_conv_silu_partial_floats(const ConvSiluShape& shape);

void causal_conv_silu_backward(const ConvSiluShape& shape, const void* x, const void* weight, const void* bias,
                               const void* g, void* dx, float* partial, void* dweight, void* dbias, void* stream);

}  // namespace mixlab::cuda::detail
