#pragma once
// The causal depthwise convolution shared by `sepconv` and `gated_cnn`:
//
//   c_{t,j} = b_j + Σ_{i=0}^{k-1} w_{j,i} · a_{t-(k-1-i), j}      (a_s = 0 for s < 0)
//
// weight: [C, 1, k] (PyTorch Conv1d layout; index k−1 multiplies the current token).  Written as
// k shifted multiply-adds rather than conv1d, so that it is the same elementwise work on every
// back-end and issues no matrix product (cost().matmul_flops stays the pointwise projections).

#include "core/implementation.h"

#include <torch/torch.h>

#ifdef MIXLAB_WITH_CUDA
#include "mixers/cuda/kernels.h"
#endif

namespace mixlab {

// a: [B, N, C] -> [B, N, C]; bias: [C] or undefined.  2·N·C·k FLOPs.
inline torch::Tensor causal_depthwise_conv(const torch::Tensor& a, const torch::Tensor& weight,
                                           const torch::Tensor& bias = {}) {
  const int64_t n = a.size(1), kernel = weight.size(2);
  auto taps = weight.squeeze(1).t();                                   // [k, C]
  auto padded = torch::constant_pad_nd(a, {0, 0, kernel - 1, 0});      // [B, N+k-1, C]
  auto out = bias.defined() ? bias.expand_as(a).clone() : torch::zeros_like(a);
  for (int64_t i = 0; i < kernel; ++i) out = out + padded.narrow(1, i, n) * taps[i];
  return out;
}

// One step: history [B, C, k-1] holds the previous k−1 inputs (oldest first); a_t: [B, C].
// Returns c_t: [B, C] (SiLU(c_t) with `silu`, as Mamba applies it) and shifts a_t into the history.
// On CUDA without gradients one kernel does it all, in place (cuda::causal_conv_step).
inline torch::Tensor causal_depthwise_conv_step(torch::Tensor& history, const torch::Tensor& a_t,
                                                const torch::Tensor& weight,
                                                const torch::Tensor& bias = {}, bool silu = false) {
#ifdef MIXLAB_WITH_CUDA
  if (cuda::causal_conv_step_supported(history, a_t, weight, bias)) {
    record_implementation("causal_conv_step", Implementation::kernel);
    return cuda::causal_conv_step(history, a_t, weight, bias, silu);
  }
#endif
  record_implementation("causal_conv_step", Implementation::reference);
  const int64_t kernel = weight.size(2);
  auto window = torch::cat({history, a_t.unsqueeze(2)}, 2);  // [B, C, k]
  auto c = (window * weight.squeeze(1)).sum(2);
  history = window.narrow(2, 1, kernel - 1);
  if (bias.defined()) c = c + bias;
  return silu ? torch::silu(c) : c;
}

// Mamba's convolution and SiLU on its inputs' layout (mixers/mamba.cpp):
//
//   u[b, e, t] = SiLU(c[b, e, t]),   c[b, e, t] = bias[e] + Σ_{i=0}^{K-1} w[e, i] · x[b, t − (K−1−i), e]
//
// x: [B, N, E] (any strides, e.g. the first E columns of in_proj's [B, N, 2E]); weight [E, 1, K];
// bias [E] or undefined -> u: [B, E, N], channels before time as the selective scan reads it.
// On CUDA one fused kernel each way reads x in place (cuda::causal_conv_silu, where
// causal_conv_silu_supported takes the inputs); otherwise LibTorch's grouped conv1d on the
// transposed view, padded K−1 on both sides with the first N outputs kept (the causal ones), and
// SiLU.
inline torch::Tensor causal_conv_silu(const torch::Tensor& x, const torch::Tensor& weight,
                                      const torch::Tensor& bias = {}) {
#ifdef MIXLAB_WITH_CUDA
  if (cuda::causal_conv_silu_supported(x, weight, bias)) {
    record_implementation("causal_conv_silu", Implementation::kernel);
    return cuda::causal_conv_silu(x, weight, bias);
  }
#endif
  record_implementation("causal_conv_silu", Implementation::reference);
  const int64_t n = x.size(1), channels = x.size(2), kernel = weight.size(2);
  auto conv = torch::conv1d(x.transpose(1, 2), weight, bias, /*stride=*/1, /*padding=*/kernel - 1,
                            /*dilation=*/1, /*groups=*/channels);  // [B, E, N + K − 1]
  return torch::silu(conv.narrow(-1, 0, n));
}

}  // namespace mixlab
