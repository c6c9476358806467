#pragma once
// LibTorch entries of core's CUDA kernels (core/cuda/*_binding.cpp), called by the dispatch
// headers of core/ where the *_supported check passes.

#include "core/cuda/skinny_linear_launch.h"
#include "core/input_norm.h"

#include <torch/torch.h>

namespace mixlab::cuda {

// y = x Wᵀ (+ b) on a few rows (core/cuda/skinny_linear.cu): x [rows, in], weight [out, in],
// bias [out] or undefined -> y [rows, out], all bf16 on one GPU, nothing needing a gradient;
// rows up to detail::kSkinnyMaxRows, in a multiple of 8.  mixlab::skinny_linear
// (core/skinny_linear.h) calls it where skinny_linear_supported passes.  With a norm, x is h and
// the product normalises its rows (core/input_norm.h) where skinny_norm_supported passes.
bool skinny_linear_supported(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);
// Whether the kernels can fold `norm` into a product of x: undefined, or a contiguous bf16 weight
// [in] on x's device, 16-byte aligned, needing no gradient.
bool skinny_norm_supported(const torch::Tensor& x, const InputNorm& norm);
torch::Tensor skinny_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                            const InputNorm& norm = {});
// y = r + (x Wᵀ + b): skinny_linear's inputs and a contiguous bf16 residual r [rows, out].
bool skinny_linear_add_supported(const torch::Tensor& residual, const torch::Tensor& x, const torch::Tensor& weight,
                                 const torch::Tensor& bias);
torch::Tensor skinny_linear_add(const torch::Tensor& residual, const torch::Tensor& x, const torch::Tensor& weight,
                                const torch::Tensor& bias);

// The launch shape of a product of x [rows, in] by a weight of `out` rows, with `norm` folded in
// where it is defined (the caller has checked skinny_linear_supported and skinny_norm_supported).
detail::SkinnyLinearShape skinny_linear_shape(const torch::Tensor& x, int64_t out, const InputNorm& norm = {});

}  // namespace mixlab::cuda
