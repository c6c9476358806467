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

namespace {

// To a GPU from pinned memory without waiting (the copy is ordered on the current stream; the
// pinned block is not reused before the copy has run): a pageable copy would make the host wait
// for the GPU to finish everything queued before it.
torch::Tensor copy_to(const torch::Tensor& host, const torch::Device& device) {
  if (!device.is_cuda() || !host.device().is_cpu()) return host.to(device);
  return host.pin_memory().to(device, /*non_blocking=*/true);
}

void copy_into(const torch::Tensor& device_buffer, const torch::Tensor& host) {
  if (device_buffer.is_cuda() && host.device().is_cpu())
    device_buffer.copy_(host.pin_memory(), /*non_blocking=*/true);
  else
    device_buffer.copy_(host);
}

}  // namespace

LossInputs LossInputs::to(const torch::Device& device) const {
  return {copy_to(inputs, device), rows.defined() ? copy_to(rows, device) : rows, copy_to(targets, device)};
}

void LossInputs::copy_from(const LossInputs& host) {
  copy_into(inputs, host.inputs);
  if (host.rows.defined()) copy_into(rows, host.rows);
  copy_into(targets, host.targets);
}

std::vector<int64_t> LossInputs::shape() const {
  return {inputs.size(0), inputs.size(1), rows.defined() ? rows.size(0) : -1};
}

}  // namespace mixlab
