#pragma once
// LibTorch entries of core's CUDA kernels (core/cuda/*_binding.cpp), called by the dispatch
// headers of core/ where the *_supported check passes.

#include <torch/torch.h>

namespace mixlab::cuda {

// y = x Wᵀ (+ b) on a few rows (core/cuda/skinny_linear.cu): x [rows, in], weight [out, in],
// bias [out] or undefined -> y [rows, out], all bf16 on one GPU, nothing needing a gradient;
// rows up to detail::kSkinnyMaxRows, in a multiple of 8.  mixlab::skinny_linear
// (core/skinny_linear.h) calls it where skinny_linear_supported passes.
bool skinny_linear_supported(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);
torch::Tensor skinny_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);

}  // namespace mixlab::cuda
