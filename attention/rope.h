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

// x: [..., N, head_dim] with cos/sin: [N, head_dim] (broadcast over the leading dims).
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

}  // namespace mixlab
