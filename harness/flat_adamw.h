#pragma once
// AdamW over every parameter of a model at once, with its step count and learning rate on the
// device: a step is a dozen kernels whatever the number of parameters, and launches only kernels,
// so it can be captured in a CUDA graph and replayed at every step (harness/graphed_train_step.h).
//
// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019, Algorithm 2),
// as torch.optim.AdamW computes it, for the step t = 1, 2, ...:
//
//   θ ← θ · (1 − lr·λ)                                   (decoupled decay; λ = 0 off the matrices)
//   m ← β₁ m + (1 − β₁) g
//   v ← β₂ v + (1 − β₂) g²
//   θ ← θ − lr / (1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
//
// Layout: the parameters are re-pointed at slices of one flat buffer, matrices (dim ≥ 2, which
// decay) first, then the rest; their gradients likewise at slices of one flat gradient buffer,
// which backward accumulates into in place.  m and v are flat buffers of the same layout.  So the
// update is elementwise over three flat tensors, and zeroing the gradients is one fill.
//
// A parameter that gets no gradient in a step still takes the step with g = 0 (its weight decay
// and the decay of its moments), as torch.optim.AdamW does when gradients are zeroed rather than
// set to None.
//
// Checkpoints keep the per-parameter names of docs/training.md ("Checkpoints"):
// optimizer.step.<name>, optimizer.exp_avg.<name>, optimizer.exp_avg_sq.<name>.

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace mixlab {

struct AdamWSettings {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
};

class FlatAdamW {
 public:
  // `parameters` by name (the model's named_parameters(), every one requiring grad, all of one
  // dtype on one device).  Moves their values into the flat buffer; the tensors stay the same
  // objects, so the model sees no difference.
  FlatAdamW(const std::vector<std::pair<std::string, torch::Tensor>>& parameters, const AdamWSettings& settings);

  // Writes lr into the device scalar the step reads (a fill: no synchronisation).
  void set_learning_rate(double lr);
  // Gradients to zero (one fill of the flat gradient buffer; they are never set to None).
  void zero_grad();
  // Queues one AdamW step from the accumulated gradients (kernels only: no synchronisation).
  void step();

  // Steps taken: the device's count (read with a synchronisation).
  int64_t steps_taken() const;
  // Copies of the weights and of the optimiser's state, and putting them back (the steps a CUDA
  // graph's warm-up takes are undone so).
  std::vector<torch::Tensor> snapshot() const;
  void restore(const std::vector<torch::Tensor>& saved);
  int64_t decayed_elements() const { return decayed_elements_; }
  // [elements] every parameter's gradient, in the flat layout (what clipping scales).
  const torch::Tensor& gradient() const { return flat_grad_; }
  int64_t elements() const { return flat_.numel(); }
  double weight_decay() const { return settings_.weight_decay; }
  const std::vector<std::string>& decayed_names() const { return decayed_names_; }

  // The state by parameter name: {"optimizer.step.<n>", "optimizer.exp_avg.<n>",
  // "optimizer.exp_avg_sq.<n>"} for every parameter; empty before the first step.
  std::map<std::string, torch::Tensor> state_by_name() const;
  // Restores what state_by_name() wrote (every parameter's three entries, one step count for
  // all); throws std::invalid_argument naming the entry that is missing or does not fit.
  void load_state_by_name(const std::map<std::string, torch::Tensor>& state);

 private:
  struct Slice {
    std::string name;
    int64_t offset, numel;
    std::vector<int64_t> shape;
  };
  torch::Tensor view_of(const torch::Tensor& flat, const Slice& slice) const;

  AdamWSettings settings_;
  std::vector<Slice> slices_;
  std::vector<std::string> decayed_names_;
  int64_t decayed_elements_ = 0;
  torch::Tensor flat_, flat_grad_, exp_avg_, exp_avg_sq_;  // [elements]
  torch::Tensor step_, lr_;                                // [] float64 on the device
};

}  // namespace mixlab
