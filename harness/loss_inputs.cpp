#include "harness/loss_inputs.h"

#include <vector>

namespace mixlab {

namespace {

// The rows with a target by tensor ops, on any device (a GPU batch waits for the GPU once).
LossInputs by_tensor_ops(const torch::Tensor& inputs, const torch::Tensor& targets) {
  LossInputs out{inputs, {}, targets};
  const auto asked = targets.ne(data::kIgnore);
  if (asked.all().item<bool>()) return out;
  out.rows = asked.nonzero().squeeze(1);          // [M]
  out.targets = targets.index_select(0, out.rows);  // [M]
  return out;
}

}  // namespace

// On the host, where the training loop makes every batch, one pass over the targets: the tensor
// ops above (ne, all, nonzero, index_select) cost 2.4-3.6x this on the Zoology batches
// (bench/train_host_cost.cpp), and the loop makes a batch per optimiser step.
LossInputs loss_inputs(const data::Batch& batch) {
  const auto targets = batch.targets.reshape({-1});  // [B·L]
  if (!targets.device().is_cpu() || targets.scalar_type() != torch::kInt64) return by_tensor_ops(batch.inputs, targets);
  const auto flat = targets.contiguous();
  const int64_t* t = flat.data_ptr<int64_t>();
  const int64_t n = flat.numel();
  std::vector<int64_t> asked;
  asked.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    if (t[i] != data::kIgnore) asked.push_back(i);
  if (static_cast<int64_t>(asked.size()) == n) return {batch.inputs, {}, targets};
  const auto m = static_cast<int64_t>(asked.size());
  auto rows = torch::empty({m}, torch::kInt64);
  auto picked = torch::empty({m}, torch::kInt64);
  int64_t* r = rows.data_ptr<int64_t>();
  int64_t* v = picked.data_ptr<int64_t>();
  for (int64_t j = 0; j < m; ++j) {
    r[j] = asked[static_cast<size_t>(j)];
    v[j] = t[r[j]];
  }
  return {batch.inputs, rows, picked};
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
