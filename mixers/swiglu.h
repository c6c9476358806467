#pragma once
// SwiGLU's gate, shared by the gated MLP (`mlp`, mixers/mlp.cpp):
//
//   swiglu(a, b) = SiLU(a) ⊙ b = a·σ(a)·b,   σ(a) = 1 / (1 + e^(−a))
//
// On CUDA one fused kernel each way (mixers/cuda/swiglu.cu: the forward, and a backward that
// writes both input gradients) where cuda::swiglu_supported takes the inputs; otherwise, and on the
// CPU, the composed reference below (two elementwise kernels forward, more backward).

#include "core/implementation.h"

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

}  // namespace mixlab
