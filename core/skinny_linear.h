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

#include <torch/torch.h>

namespace mixlab {

torch::Tensor skinny_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias = {});

}  // namespace mixlab
