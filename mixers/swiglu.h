#pragma once
// SwiGLU's gate, shared by the gated MLP (`mlp`, mixers/mlp.cpp):
//
//   swiglu(a, b) = SiLU(a) ⊙ b = a·σ(a)·b,   σ(a) = 1 / (1 + e^(−a))
//
// On CUDA one fused kernel each way (mixers/cuda/swiglu.cu: the forward, and a backward that
// writes both input gradients) where cuda::swiglu_supported takes the inputs; otherwise, and on the
// CPU, the composed reference below (two elementwise kernels forward, more backward).

#include "core/implementation.h"
#include "core/skinny_linear.h"

#include <torch/torch.h>

#ifdef MIXLAB_WITH_CUDA
#include "mixers/cuda/kernels.h"
#endif

namespace mixlab {

// a (the gate), b (the up projection): [..., hidden] of one shape -> [..., hidden], in the dtype
// of SiLU(a)·b.
inline torch::Tensor swiglu(const torch::Tensor& a, const torch::Tensor& b) {
#ifdef MIXLAB_WITH_CUDA
  if (cuda::swiglu_supported(a, b)) {
    record_implementation("swiglu", Implementation::kernel);
    return cuda::swiglu(a, b);
  }
#endif
  record_implementation("swiglu", Implementation::reference);
  return torch::silu(a) * b;
}

// W_gate and W_up: [hidden, d] each, hidden a multiple of 8 -> [2·hidden, d] with W_gate's rows
// 8j..8j+7 followed by W_up's rows 8j..8j+7 for each j: the layout swiglu_linear reads, in which one
// block of 16 rows holds the gate and up rows of the same 8 outputs.
inline torch::Tensor interleave_gate_up(const torch::Tensor& gate, const torch::Tensor& up) {
  const int64_t hidden = gate.size(0), d = gate.size(1);
  TORCH_CHECK(hidden % 8 == 0 && up.sizes() == gate.sizes(), "interleave_gate_up: W_gate and W_up must be [hidden, d] "
              "of one shape with hidden a multiple of 8; got ", gate.sizes(), " and ", up.sizes());
  return torch::stack({gate.reshape({hidden / 8, 8, d}), up.reshape({hidden / 8, 8, d})}, 1).reshape({2 * hidden, d});
}

// A decoding step's gated MLP input: SiLU(x W_gᵀ) ⊙ (x W_uᵀ) with weight_pairs =
// interleave_gate_up(W_g, W_u).  x: [B, d] -> [B, hidden].  On CUDA with bf16 and no gradient one
// kernel ("swiglu_linear=kernel", mixers/cuda/swiglu_linear.cu: SwiGLU as the product's store);
// otherwise skinny_linear, the pairs taken apart, and swiglu ("swiglu_linear=reference").  With a
// norm, x is h and the product reads RMSNorm(h)·g (core/input_norm.h: inside the kernel).
inline torch::Tensor swiglu_linear(const torch::Tensor& x, const torch::Tensor& weight_pairs,
                                   const InputNorm& norm = {}) {
#ifdef MIXLAB_WITH_CUDA
  if (cuda::swiglu_linear_supported(x, weight_pairs, norm)) {
    record_implementation("swiglu_linear", Implementation::kernel);
    return cuda::swiglu_linear(x, weight_pairs, norm);
  }
#endif
  record_implementation("swiglu_linear", Implementation::reference);
  const int64_t batch = x.size(0), hidden = weight_pairs.size(0) / 2;
  const auto blocks = skinny_linear(x, weight_pairs, {}, norm).view({batch, hidden / 8, 2, 8});  // [B, hidden/8, (g, u), 8]
  return swiglu(blocks.select(2, 0).reshape({batch, hidden}), blocks.select(2, 1).reshape({batch, hidden}));
}

}  // namespace mixlab
