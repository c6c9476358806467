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
// The RMSNorm alone, y = RMSNorm(x)·w, by the same kernels (no residual); taken where
// add_rms_norm_supported(x, x, weight) passes.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// The softmax statistics of a cross entropy per row of logits (cross_entropy_rows.cu; reference and
// dispatch: harness/cross_entropy_rows.h).  Taken where cross_entropy_rows_supported passes: CUDA
// logits [M, V], contiguous, float32 / bf16 / fp16, 1 <= M < 2^31; targets [M] int64 beside them.
//   forward:    -> (lse, picked): [M] float32
//   backward_:  logits ← scale·(exp(logits − lse) − onehot(targets)) in place, returned;
//               lse [M], scale [] on the device (no host synchronisation)
bool cross_entropy_rows_supported(const torch::Tensor& logits, const torch::Tensor& targets);
std::pair<torch::Tensor, torch::Tensor> cross_entropy_rows_forward(const torch::Tensor& logits,
                                                                   const torch::Tensor& targets);
torch::Tensor cross_entropy_rows_backward_(torch::Tensor& logits, const torch::Tensor& targets,
                                           const torch::Tensor& lse, const torch::Tensor& scale);

// A token embedding whose weight gradient is token_embedding_grad.cu's kernel (reference and
// dispatch: harness/token_embedding.h).  Taken where token_embedding_supported passes: CUDA weight
// [V, d] float32 contiguous, tokens int64 on the same device.  The forward is index_select.
bool token_embedding_supported(const torch::Tensor& weight, const torch::Tensor& tokens);
torch::Tensor token_embedding(const torch::Tensor& weight, const torch::Tensor& tokens);

}  // namespace mixlab::cuda
