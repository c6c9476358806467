#pragma once
// A batch as the loss reads it: the positions that have a target found once, on the host where
// the batch is made, so that the loss on the device has a fixed shape and never waits for the GPU.
//
//   inputs   [B, L] int64 tokens
//   rows     [M] int64, the positions of the flattened [B·L] that have a target (≠ data::kIgnore);
//            undefined when every position has one (corpus windows)
//   targets  [M] int64 (or [B·L] when rows is undefined)

#include "data/synthetic.h"

#include <torch/torch.h>

#include <vector>

namespace mixlab {

struct LossInputs {
  torch::Tensor inputs, rows, targets;

  // To `device`; host to GPU through pinned memory, without making the host wait.
  LossInputs to(const torch::Device& device) const;
  // Writes `host` (same shapes) into these buffers, host to GPU as to() does.
  void copy_from(const LossInputs& host);
  // (B, L, M): what a captured step's static buffers are shaped by (M = -1 when rows is undefined).
  std::vector<int64_t> shape() const;
};

// Finds the rows where `batch` (on any device; the CPU avoids a synchronisation) has a target.
LossInputs loss_inputs(const data::Batch& batch);

}  // namespace mixlab
