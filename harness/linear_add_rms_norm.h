#pragma once
// A decode step's output projection, its residual add and the norm that reads the sum, as one op
// (issue 13: in a decode step each of these was a kernel of its own, and the step is a chain of
// short kernels whose count sets its time):
//
//   b = x Wᵀ (+ bias)   rounded to the element,        x: [rows, in],  W: [d, in]
//   h = r + b,          y = RMSNorm(h)·w = h · rsqrt(mean(h²) + eps) · w     over d
//
// r is the residual stream [rows, d] and w the next sublayer's (or the final) norm weight [d].
// On CUDA, where cuda::linear_add_rms_norm_supported takes the inputs (bf16 throughout, rows <= 64,
// nothing needing a gradient), one kernel (harness/cuda/linear_add_rms_norm.cu): the few-row
// product with the add as its store, and the last block of each 16 rows to finish normalising
// them ("linear_add_rms_norm=kernel").  Otherwise the reference, the two ops in turn:
// add_rms_norm(r, skinny_linear(x, W, bias), w, eps) ("linear_add_rms_norm=reference").

#include <torch/torch.h>

#include <utility>

namespace mixlab {

// Returns (h, y), each [rows, d], as add_rms_norm returns them.
std::pair<torch::Tensor, torch::Tensor> linear_add_rms_norm(const torch::Tensor& x, const torch::Tensor& weight,
                                                            const torch::Tensor& bias, const torch::Tensor& residual,
                                                            const torch::Tensor& norm_weight, double eps);

}  // namespace mixlab
