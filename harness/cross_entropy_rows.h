#pragma once
// The softmax statistics of a cross entropy over rows of logits, the two passes over [M, V] that
// linear_cross_entropy (harness/linear_cross_entropy.h) makes per chunk of rows:
//
//   forward   lse_i = log Σ_v exp(l_iv),   picked_i = l_{i, y_i}          (loss_i = lse_i − picked_i)
//   backward  ∂loss/∂l_iv = scale · (exp(l_iv − lse_i) − [v = y_i])       (softmax − onehot, scaled)
//
// On CUDA one kernel each way (harness/cuda/cross_entropy_rows.cu: one read of the logits forward,
// one read and write backward, in place) where cuda::cross_entropy_rows_supported takes the inputs,
// recording "cross_entropy_rows=kernel"; otherwise, and on the CPU, the reference below with
// LibTorch's operators ("cross_entropy_rows=reference").  Statistics in float32 (float64 for
// float64 logits); the gradient in the logits' dtype.

#include <torch/torch.h>

#include <utility>

namespace mixlab {

// logits: [M, V]; targets: [M] int64 in [0, V) -> (lse, picked): [M] each, float32 (float64 for
// float64 logits).
std::pair<torch::Tensor, torch::Tensor> cross_entropy_rows_forward(const torch::Tensor& logits,
                                                                   const torch::Tensor& targets);

// logits: [M, V] (overwritten where the kernel runs); lse: [M] from the forward; scale: [] ->
// the gradient of Σ_i scale·loss_i with respect to the logits, [M, V] in the logits' dtype.
torch::Tensor cross_entropy_rows_backward(torch::Tensor logits, const torch::Tensor& targets, const torch::Tensor& lse,
                                          const torch::Tensor& scale);

namespace reference {
std::pair<torch::Tensor, torch::Tensor> cross_entropy_rows_forward(const torch::Tensor& logits,
                                                                   const torch::Tensor& targets);
torch::Tensor cross_entropy_rows_backward(const torch::Tensor& logits, const torch::Tensor& targets,
                                          const torch::Tensor& lse, const torch::Tensor& scale);
}  // namespace reference

}  // namespace mixlab
