#pragma once
// One optimiser step of a language model: the loss, AdamW, the schedule, clipping, gradient
// accumulation and (with several ranks) gradient averaging.
//
//   optimiser   AdamW; weight decay on matrices (dim ≥ 2) only
//   step        the mean of grad_accum micro-batch losses (cross entropy on the loss mask plus
//               the model's auxiliary loss), gradient norm clipped to grad_clip, one AdamW step
//   precision   bf16 autocast on CUDA, float32 on the CPU

#include "data/synthetic.h"
#include "harness/model.h"
#include "harness/train_config.h"

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace mixlab {
namespace distributed {
class GradientReducer;
}

// Cross entropy over the masked positions + the model's auxiliary loss; the LM head is applied
// only at the positions that have a target (the same value as over all positions with
// ignore_index).  inputs, targets: [B, L]; targets = data::kIgnore where masked.
torch::Tensor language_model_loss(LanguageModel& model, const data::Batch& batch);

// Model + AdamW with the decay/no-decay parameter groups + schedule + clipping + accumulation.
// g ← g · min(1, max_norm / (‖g‖₂ + 1e-6)), ‖g‖₂ over the gradients of every parameter together
// (torch.nn.utils.clip_grad_norm_), computed on the device: the host does not wait for it.
void clip_gradient_norm(const std::vector<torch::Tensor>& parameters, double max_norm);

class Trainer {
 public:
  Trainer(LanguageModel model, const TrainConfig& config, torch::Device device, int64_t total_steps);
  // One optimiser step (1-based `step`) over `micro_batches`; returns the mean loss.
  double step(const std::vector<data::Batch>& micro_batches, int64_t step);
  LanguageModel& model() { return model_; }
  torch::optim::AdamW& optimizer() { return *optimizer_; }
  bool autocast() const { return autocast_; }
  // Data-parallel training (harness/distributed.h): gradients averaged across ranks each step.
  void synchronise_gradients(distributed::GradientReducer* reducer) { reducer_ = reducer; }
  // What computed the last step: kernel or reference per op (core/implementation.h).
  const std::string& implementation() const { return implementation_; }

 private:
  LanguageModel model_;
  TrainConfig config_;
  torch::Device device_;
  int64_t total_steps_;
  bool autocast_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::string implementation_;
  distributed::GradientReducer* reducer_ = nullptr;
};

}  // namespace mixlab
