#pragma once
// The RMSNorm in front of a decode step's first product, handed to that product instead of run
// as a kernel of its own (issue 13; docs/decode.md):
//
//   x = RMSNorm(h)·g = h · rsqrt(mean_k h_k² + eps) ⊙ g        h: [rows, d],  g: [d]
//
// A few-row product y = x Wᵀ then needs no x in memory: its kernel multiplies h by g as it loads
// h, sums h² on the way, and scales each row's sums by rsqrt(mean h² + eps) in its store
// (core/cuda/skinny_linear.cuh):
//
//   y[m, o] = rsqrt(mean_k h[m, k]² + eps) · Σ_k bf16(h[m, k]·g[k]) · W[o, k]
//
// which rounds once to bf16 where the two ops round x and then y.  Elsewhere, and as the
// reference, apply() normalises first (compat::rms_norm), then the product runs as it would on x.

#include "core/compat.h"

#include <torch/torch.h>

namespace mixlab {

struct InputNorm {
  torch::Tensor weight;  // g: [d]; undefined: no norm, x = h
  double eps = 0.0;

  bool defined() const { return weight.defined(); }
  // x: RMSNorm(h)·g, or h itself where no norm is given.
  torch::Tensor apply(const torch::Tensor& h) const { return defined() ? compat::rms_norm(h, weight, eps) : h; }
};

}  // namespace mixlab
