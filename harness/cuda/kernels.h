#pragma once
// Entry points of the CUDA kernels for harness/ (see attention/cuda/kernels.h for the rules).

#include <torch/torch.h>

#include <utility>

namespace mixlab::cuda {

// The residual add fused with the next RMSNorm (add_rms_norm.cu), differentiable (one backward
// kernel writes dx = dr = dh, and dw by a deterministic two-pass sum):
//   h = x + r,   y = RMSNorm(h)·w = h·rsqrt(mean(h²) + eps)·w   over the last dimension
// x, r: [..., d] of one shape, contiguous; weight: [d], contiguous.  Returns (h in x's dtype,
// y in compat::rms_norm_dtype(x, weight): x·w's promoted dtype).
// Taken by mixlab::add_rms_norm (harness/add_rms_norm.h) where add_rms_norm_supported passes: CUDA;
// x, r, weight and y bf16 / fp16 / float32 with x's dtype that of x + r (r of x's dtype, or any
// of them beside float32 x); d a multiple of 8 up to 2048; every data pointer 16-byte aligned.
bool add_rms_norm_supported(const torch::Tensor& x, const torch::Tensor& r, const torch::Tensor& weight);
std::pair<torch::Tensor, torch::Tensor> add_rms_norm(const torch::Tensor& x, const torch::Tensor& r,
                                                     const torch::Tensor& weight, double eps);

}  // namespace mixlab::cuda
