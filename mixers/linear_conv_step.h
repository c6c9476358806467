#pragma once
// Mamba's input stage of one decoding step (mixers/mamba.cpp, advance):
//
//   xz = x W_inᵀ + b_in                                  x: [B, d] -> xz: [B, out]
//   u  = SiLU(conv step of xz[:, :C])                   u: [B, C], the history [B, C, K−1] shifted
//
// the two ops in turn: mixlab::skinny_linear (core/skinny_linear.h), then
// mixlab::causal_depthwise_conv_step (mixers/causal_depthwise_conv.h) with SiLU.  On CUDA with bf16
// and no gradient one kernel does both ("linear_conv_step=kernel", mixers/cuda/linear_conv_step.cu:
// the conv step is the store of the product), otherwise the two ops ("linear_conv_step=reference").
// With a norm, x is h and the product reads RMSNorm(h)·g (core/input_norm.h: inside the kernel).

#include "core/implementation.h"
#include "core/skinny_linear.h"
#include "mixers/causal_depthwise_conv.h"

#include <torch/torch.h>

#include <utility>

#ifdef MIXLAB_WITH_CUDA
#include "mixers/cuda/kernels.h"
#endif

namespace mixlab {

// weight [out, d], bias [out] or undefined; history [B, C, K−1] (updated; C <= out); conv_weight
// [C, 1, K], conv_bias [C] or undefined -> {xz [B, out], u [B, C]}.
inline std::pair<torch::Tensor, torch::Tensor> linear_conv_step(const torch::Tensor& x, const torch::Tensor& weight,
                                                                const torch::Tensor& bias, torch::Tensor& history,
                                                                const torch::Tensor& conv_weight,
                                                                const torch::Tensor& conv_bias,
                                                                const InputNorm& norm = {}) {
#ifdef MIXLAB_WITH_CUDA
  if (cuda::linear_conv_step_supported(x, weight, bias, history, conv_weight, conv_bias, norm)) {
    record_implementation("linear_conv_step", Implementation::kernel);
    return cuda::linear_conv_step(x, weight, bias, history, conv_weight, conv_bias, norm);
  }
#endif
  record_implementation("linear_conv_step", Implementation::reference);
  auto xz = skinny_linear(x, weight, bias, norm);
  auto u = causal_depthwise_conv_step(history, xz.narrow(-1, 0, history.size(1)), conv_weight, conv_bias,
                                      /*silu=*/true);
  return {xz, u};
}

}  // namespace mixlab
