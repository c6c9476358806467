#pragma once
// The input a normed few-row product reads (core/input_norm.h), written out in float64 on the
// CPU: RMSNorm(h)·g = h · rsqrt(mean_k h_k² + eps) ⊙ g, from the given (possibly bf16) values.

#include "core/input_norm.h"

#include <torch/torch.h>

namespace mixlab::testing {

inline torch::Tensor normalised_float64(const torch::Tensor& h, const InputNorm& norm) {
  const auto h64 = h.to(torch::kCPU, torch::kDouble);
  return h64 * torch::rsqrt(h64.square().mean(-1, /*keepdim=*/true) + norm.eps) *
         norm.weight.to(torch::kCPU, torch::kDouble);
}

// A norm of width d in `options`: g around 1 with a spread (so a g applied twice, or not at all,
// misses by its size), eps 1e-5.
inline InputNorm random_input_norm(int64_t d, const torch::TensorOptions& options) {
  return InputNorm{(1.0 + 0.5 * torch::randn({d}, options.dtype(torch::kFloat))).to(options.dtype()), 1e-5};
}

}  // namespace mixlab::testing
