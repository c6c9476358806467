#pragma once
// A linear layer on the few rows of a decode step (a batch of one token per sequence):
//
//   y = x Wᵀ + b,   x: [rows, in],  W: [out, in],  b: [out] or none  ->  y: [rows, out]
//
// On CUDA, bf16, rows <= 64 and nothing needing a gradient: one kernel (core/cuda/skinny_linear.cu)
// that reads W once with tensor cores taking x as their 16-row operand ("skinny_linear=kernel");
// cuBLAS's products of 16 rows read the weights at about a quarter of the copy bandwidth.
// Otherwise, and on the CPU, the reference at::linear ("skinny_linear=reference").  Used by the
// static decode step (docs/decode.md): its projections and the logits.

#include "core/input_norm.h"

#include <torch/torch.h>

namespace mixlab {

// y = norm(x) Wᵀ + b: with a norm, x is h, the un-normalised rows (core/input_norm.h); the kernel
// normalises inside the product where the norm's weight is bf16, the reference runs
// InputNorm::apply first.
torch::Tensor skinny_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias = {},
                            const InputNorm& norm = {});

// y = r + (x Wᵀ + b), a decode step's output projection and residual add (r: [rows, out]): one
// kernel on CUDA where skinny_linear's kernel runs and r is a contiguous bf16 tensor
// ("skinny_linear_add=kernel"; the product rounded to bf16, then the sum, as the two ops round),
// else r + skinny_linear(x, W, b) ("skinny_linear_add=reference").
torch::Tensor skinny_linear_add(const torch::Tensor& residual, const torch::Tensor& x, const torch::Tensor& weight,
                                const torch::Tensor& bias = {});

}  // namespace mixlab
