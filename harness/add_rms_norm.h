#pragma once
// The residual add of one sublayer fused with the RMSNorm that reads its result (the next
// sublayer's pre-norm, or the final norm), for harness/model.cpp's pre-norm stack:
//
//   h = x + r,   y = RMSNorm(h)·w = h · rsqrt(mean(h²) + eps) · w   over the last dimension
//
// On CUDA one kernel each way (harness/cuda/add_rms_norm.cu: the forward writes h, y and the
// per-row rsqrt; the backward writes dx = dr and dw, the latter by a deterministic two-pass sum)
// where cuda::add_rms_norm_supported takes the inputs, recording "add_rms_norm=kernel"; otherwise,
// and on the CPU, the composed reference below ("add_rms_norm=reference"): h = x + r, then
// compat::rms_norm(h, w, eps), bit for bit what the model computed before the fusion.

#include <torch/torch.h>

#include <utility>

namespace mixlab {

// x (the residual stream), r (a sublayer's output): [..., d] of one shape; weight: [d] ->
// (h = x + r in their promoted dtype, y = RMSNorm(h)·w in compat::rms_norm_dtype(h, weight)).
std::pair<torch::Tensor, torch::Tensor> add_rms_norm(const torch::Tensor& x, const torch::Tensor& r,
                                                     const torch::Tensor& weight, double eps);

// y = RMSNorm(x)·w over the last dimension, the norm that no residual add precedes (the first
// sublayer's, routed layers', decoding's): on CUDA the same kernels with no residual ("rms_norm=kernel"),
// otherwise compat::rms_norm ("rms_norm=reference").  x: [..., d]; weight: [d].
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

}  // namespace mixlab
