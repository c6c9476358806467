#pragma once
// One optimiser step of a language model: the loss, AdamW, the schedule, clipping, gradient
// accumulation and (with several ranks) gradient averaging.
//
//   optimiser   AdamW over one flat buffer (harness/flat_adamw.h); weight decay on matrices
//               (dim ≥ 2) only
//   step        the mean of grad_accum micro-batch losses (cross entropy on the loss mask plus
//               the model's auxiliary loss), gradient norm clipped to grad_clip, one AdamW step
//   precision   bf16 autocast on CUDA, float32 on the CPU
//   execution   train.execution "auto" / "cuda_graph" on CUDA: the step replays a CUDA graph
//               (harness/graphed_train_step.h), eagerly when it cannot be captured or the job
//               is data-parallel; "eager" (the default): launched op by op

#include "data/synthetic.h"
#include "harness/flat_adamw.h"
#include "harness/loss_inputs.h"
#include "harness/model.h"
#include "harness/pending_loss.h"
#include "harness/train_config.h"

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace mixlab {
namespace distributed {
class GradientReducer;
}

class GraphedTrainStep;

// Cross entropy over the positions that have a target + the model's auxiliary loss; the LM head
// is applied only at those positions (the same value as over all positions with ignore_index).
// No synchronisation with the host: the rows were found where the batch was made.
torch::Tensor language_model_loss(LanguageModel& model, const LossInputs& batch);
// The same for a batch (inputs, targets: [B, L]; targets = data::kIgnore where masked).
torch::Tensor language_model_loss(LanguageModel& model, const data::Batch& batch);

// Model + AdamW with the decay/no-decay parameter groups + schedule + clipping + accumulation.
// g ← g · min(1, max_norm / (‖g‖₂ + 1e-6)), ‖g‖₂ over all the gradients together
// (torch.nn.utils.clip_grad_norm_), computed on the device: the host does not wait for it.
// gradients: any split of the gradient (FlatAdamW's one flat tensor, or one per parameter;
// undefined entries are skipped), scaled in place.
void clip_gradient_norm(const std::vector<torch::Tensor>& gradients, double max_norm);

class Trainer {
 public:
  Trainer(LanguageModel model, const TrainConfig& config, torch::Device device, int64_t total_steps);
  ~Trainer();
  // One optimiser step (1-based `step`) over `micro_batches`; returns the mean loss.
  double step(const std::vector<data::Batch>& micro_batches, int64_t step);
  // The same step, queued: returns before the GPU has run it (harness/pending_loss.h), so the
  // caller can prepare the next batch meanwhile.  step() is queue(...).value().
  PendingLoss queue(const std::vector<data::Batch>& micro_batches, int64_t step);
  LanguageModel& model() { return model_; }
  FlatAdamW& optimizer() { return *optimizer_; }
  bool autocast() const { return autocast_; }
  // Data-parallel training (harness/distributed.h): gradients averaged across ranks each step
  // (eagerly: the all-reduce is not captured).
  void synchronise_gradients(distributed::GradientReducer* reducer);
  // What computed the last step: kernel or reference per op (core/implementation.h).
  const std::string& implementation() const { return implementation_; }
  // How the last step ran: "cuda_graph" or "eager"; why_not_graphed(): why a graph was asked
  // for (train.execution) and the last step ran eagerly (empty otherwise).
  const std::string& execution() const { return execution_; }
  const std::string& why_not_graphed() const { return why_not_graphed_; }

 private:
  // Queues a whole step on device inputs: zero the gradients, forward and backward per
  // micro-batch, clip, AdamW; returns the mean loss, a device scalar.
  torch::Tensor queue_step(const std::vector<LossInputs>& micro_batches);

  LanguageModel model_;
  TrainConfig config_;
  torch::Device device_;
  int64_t total_steps_;
  bool autocast_;
  std::unique_ptr<FlatAdamW> optimizer_;
  std::unique_ptr<GraphedTrainStep> graphs_;
  std::string implementation_, execution_ = "eager", why_not_graphed_;
  distributed::GradientReducer* reducer_ = nullptr;
};

}  // namespace mixlab
