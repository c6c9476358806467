#pragma once
// Rotary position embedding, rotate-half convention (GPT-NeoX / HF Llama / Qwen2).
//
//   inv_freq_i = theta^(-2i/d_h),            i = 0 .. d_h/2 - 1
//   angle(p, i) = p * inv_freq_i,             cos/sin tables: [N, d_h] (the d_h/2 angles twice)
//   rope(x)_p   = x_p * cos(p) + rotate_half(x_p) * sin(p),   rotate_half([a, b]) = [-b, a]

#include <torch/torch.h>

namespace mixlab {

// cos and sin tables for absolute positions `positions` ([N] int64): each [N, head_dim], in the
// dtype/device of `options`.  Computed in float64 then cast, so every dtype sees the same angles.
std::pair<torch::Tensor, torch::Tensor> rope_tables(const torch::Tensor& positions, int64_t head_dim,
                                                    double theta, const torch::TensorOptions& options);

// x: [..., N, head_dim] with cos/sin: [N, head_dim] (broadcast over the leading dims); the result
// has the dtype of x·cos (x's, or float32 for bf16 x beside float32 tables), except on the
// kernel's path under CUDA autocast, which writes the autocast dtype (docs/gpu.md).  On
// CUDA it runs one fused kernel where cuda::rope_supported takes the inputs (attention/cuda/
// kernels.h: x [B, H, N, d_h], strided, last dim unit stride; bf16 / fp16 / float32), and records
// "apply_rope=kernel"; otherwise the composed reference ("apply_rope=reference").
// For positions 0 .. N-1 take the tables from rope_tables_cached (attention/rope_cache.h).
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

}  // namespace mixlab
