#pragma once
// The token embedding of the training path, the lookup and its weight gradient:
//
//   forward   e_t = W[y_t]                      W: [V, d], tokens y: [...] -> e: [..., d]
//   backward  ∂L/∂W_v = Σ_{t : y_t = v} ∂L/∂e_t
//
// On CUDA the backward is one kernel (harness/cuda/token_embedding_grad.cu) where
// cuda::token_embedding_supported takes the inputs, recording "token_embedding=kernel":
// LibTorch's dense embedding backward sorts the tokens and sums each run, and with one token
// filling most positions (MQAR's padding) that sum is one long serial segment (0.60 ms of a
// Zoology training step's 3.3 ms on an H200, docs/PERF.md).  The kernel walks consecutive tokens
// per warp and adds each run of equal tokens once with float32 atomics: the sum's order, and so
// its last bits, vary from run to run (as torch.compile's lowering of the same backward does).
// Otherwise, and on the CPU, the reference: torch::embedding and its LibTorch backward
// ("token_embedding=reference").

#include <torch/torch.h>

namespace mixlab {

// weight: [V, d]; tokens: [...] int64 in [0, V) -> [..., d] in weight's dtype.
torch::Tensor token_embedding(const torch::Tensor& weight, const torch::Tensor& tokens);

}  // namespace mixlab
