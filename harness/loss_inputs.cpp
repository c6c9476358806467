#include "harness/loss_inputs.h"

namespace mixlab {

LossInputs loss_inputs(const data::Batch& batch) {
  LossInputs out;
  out.inputs = batch.inputs;
  const auto targets = batch.targets.reshape({-1});  // [B·L]
  const auto asked = targets.ne(data::kIgnore);
  if (asked.all().item<bool>()) {
    out.targets = targets;
    return out;
  }
  out.rows = asked.nonzero().squeeze(1);          // [M]
  out.targets = targets.index_select(0, out.rows);  // [M]
  return out;
}

LossInputs LossInputs::to(const torch::Device& device) const {
  return {inputs.to(device), rows.defined() ? rows.to(device) : rows, targets.to(device)};
}

std::vector<int64_t> LossInputs::shape() const {
  return {inputs.size(0), inputs.size(1), rows.defined() ? rows.size(0) : -1};
}

}  // namespace mixlab
