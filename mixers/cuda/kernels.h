#pragma once
// Entry points of the CUDA kernels for mixers/ (see attention/cuda/kernels.h for the rules).

#include <torch/torch.h>

namespace mixlab::cuda {

// Mamba-1 selective scan, fused with the D skip and the SiLU(z) gate, differentiable:
//   u, delta, z: [B, E, N];  A: [E, n] (float32);  B, C: [B, n, N];  D, delta_bias: [E] (float32)
//   delta' = softplus(delta + delta_bias);  h_t = exp(delta'_t A) h_{t-1} + delta'_t u_t B_t
//   y_t = <h_t, C_t> + D u_t;  returns y ⊙ SiLU(z): [B, E, N] in the op's dtype (under CUDA autocast
//   the autocast dtype, as for a custom op; else the common dtype of u, delta, z, B, C), float32 state.
// Whether the kernels take these inputs: CUDA, d_state n = 16, D and z given, the
// sequence operands bf16/fp16/float32 once cast to the op's dtype.  Callers run the reference
// otherwise; selective_scan below refuses them.
bool selective_scan_supported(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                              const torch::Tensor& B, const torch::Tensor& C, const torch::Tensor& D,
                              const torch::Tensor& z, const torch::Tensor& delta_bias);

torch::Tensor selective_scan(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                             const torch::Tensor& B, const torch::Tensor& C, const torch::Tensor& D,
                             const torch::Tensor& z, const torch::Tensor& delta_bias);

}  // namespace mixlab::cuda
