#pragma once
// Cross entropy of a linear head without its [M, V] logits (issue 13; llm.c fuses its classifier
// for the same reason): the rows go through in chunks, each chunk's logits are made, reduced to
// two numbers per row and dropped, and the backward makes them again.  Peak memory for the loss
// is one chunk of float32 logits instead of all of them (a 16k-token batch with Qwen2's 151,936
// tokens: 128 MiB instead of 9.3 GiB in float32 alone).
//
//   loss      = (1/M) Σᵢ [ log Σᵥ exp(hᵢ·wᵥ) − hᵢ·w_{yᵢ} ]
//   ∂loss/∂hᵢ = (1/M) (softmax(hᵢ Wᵀ) − onehot(yᵢ)) W
//   ∂loss/∂W  = (1/M) Σᵢ (softmax(hᵢ Wᵀ) − onehot(yᵢ))ᵀ hᵢ
//
// Precision: the products run in the dtype autocast gives the forward's (bf16 under bf16
// autocast), the backward's in the same dtype; logsumexp, softmax and the loss in float32
// (float64 inputs stay float64).  The reference is cross_entropy(hidden · Wᵀ, targets), which
// tests/test_linear_cross_entropy.cpp compares against.

#include <torch/torch.h>

namespace mixlab {

// hidden: [M, d]; weight: [V, d]; targets: [M] int64 in [0, V).  Returns the mean loss, [].
// chunk_rows: rows per chunk (0: as many as keep a chunk's logits within 2^27 elements).
torch::Tensor linear_cross_entropy(const torch::Tensor& hidden, const torch::Tensor& weight,
                                   const torch::Tensor& targets, int64_t chunk_rows = 0);

}  // namespace mixlab
