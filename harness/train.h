#pragma once
// The training phase: a point's model trained on the corpus or a synthetic task, evaluated every
// k steps and at the end, with curves and evaluations written through TrainingRecords
// (docs/training.md describes the "train" section).
//
//   optimiser   AdamW; weight decay on matrices (dim ≥ 2) only
//   schedule    lr(s) = lr·s/W for s ≤ W (linear warm-up over W steps), then cosine decay
//               lr(s) = min_lr + (lr − min_lr)·½(1 + cos(π·(s − W)/(T − W)))  to min_lr at s = T
//   step        the mean of grad_accum micro-batch losses (cross entropy on the loss mask plus
//               the model's auxiliary loss), gradient norm clipped to grad_clip, one AdamW step
//   budget      exactly one of steps, tokens (T = ⌊tokens / (grad_accum·batch·seq_len)⌋),
//               flop_budget (T = ⌊F / (3·cost(grad_accum·batch, seq_len).flops)⌋): the same
//               compute for every configuration of a sweep, or epochs over a fixed example set
//               (T = E·⌊N / (grad_accum·batch)⌋, N = data.examples; the protocol of Zoology, arXiv
//               2312.04927, Figure 2: epochs over 100k fixed examples, stop at 0.99 accuracy)
//   data        a synthetic task is an endless stream of fresh examples, or with data.examples
//               N the fixed set of examples 0..N−1 of the training split, read once per epoch
//               in an order shuffled per epoch (the last incomplete batch is dropped)
//   early stop  with stop_at_accuracy, training ends at the first evaluation whose accuracy on
//               the training task's held-out set reaches it (with epochs: evaluated each epoch)
//   precision   bf16 autocast on CUDA, float32 on the CPU
//   determinism on the CPU a given seed gives the same run: the initial weights come from
//               torch::manual_seed(seed), batch (s, m) from the data seed and (s, m) alone
//   resume      a checkpoint (weights, optimiser state, step, elapsed time, RNG state) is written
//               under run_dir every checkpoint_every steps and at the end, atomically (rename);
//               a restarted run loads it, discards records after its step and continues the
//               curve exactly

#include "data/synthetic.h"
#include "harness/model.h"
#include "harness/training_hook.h"

#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mixlab {
namespace distributed {
class GradientReducer;
}

struct EvalTaskConfig {
  data::TaskSpec spec;     // spec.vocab == 0: the model's vocabulary
  int64_t examples = 256;  // held-out examples (split 1)
};

struct TrainConfig {
  // What to train on: "corpus" or a synthetic task name.
  std::string source = "corpus";
  std::string tokenizer = "byte";  // corpus: byte | bpe
  int64_t bpe_vocab = 4096;
  std::string corpus_dir;          // empty: data::default_corpus_dir()
  data::TaskSpec task;             // synthetic training task (seq_len is taken from seq_len below)
  int64_t train_examples = 0;      // data.examples: a fixed training set of N examples (0: endless stream)

  int64_t seq_len = 128;
  int64_t batch_size = 16;
  int64_t grad_accum = 1;

  int64_t steps = 0;               // exactly one budget is set
  int64_t tokens = 0;
  double flop_budget = 0;
  int64_t epochs = 0;              // passes over the fixed set (needs data.examples)
  double stop_at_accuracy = 0;     // 0: off; else stop once the task's held-out accuracy ≥ it

  double lr = 1e-3, min_lr = 1e-4;
  int64_t warmup_steps = 0;
  double weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, grad_clip = 1.0;
  uint64_t seed = 0;

  int64_t eval_every = 0;          // 0: only at the end
  int64_t eval_batches = 8;        // corpus: validation windows = eval_batches × batch_size
  int64_t eval_seq_len = 0;        // 0: seq_len
  int64_t position_buckets = 4;
  std::vector<EvalTaskConfig> eval_tasks;  // besides the training task's own held-out set

  int64_t checkpoint_every = 0;    // 0: eval_every, or only at the end
  std::string precision = "auto";  // auto (bf16 on CUDA, fp32 on CPU) | float32 | bfloat16
  int64_t threads = 0;             // CPU threads (0: leave LibTorch's setting)
  bool progress = true;            // progress line on a terminal
  int64_t log_every = 0;           // off a terminal: a log line every k steps (0: about 20 per run)
};

// Strict parse of a "train" object; ConfigError names FILE and PATH.key and what is valid.
TrainConfig parse_train_config(const nlohmann::json& train, const std::string& file,
                               const std::string& path = "train");

// Forward FLOPs of one optimiser step's batch (grad_accum·batch sequences of seq_len) × 3
// (forward + backward ≈ 3 × forward).
double training_step_flops(const TrainConfig& config, const LanguageModelImpl& model);
// Optimiser steps per pass over the fixed example set: ⌊N / (grad_accum·batch)⌋ (0 without one).
int64_t steps_per_epoch(const TrainConfig& config);
// The fixed set's order in epoch e: a permutation of 0..N−1 drawn from (seed, e) by Fisher–Yates.
std::vector<int64_t> epoch_order(const TrainConfig& config, int64_t epoch);
// The fixed-set examples of micro-batch `micro` of optimiser step `step` (1-based): sequence r of
// the run, r = ((step − 1)·grad_accum + micro)·batch + b, is example epoch_order(e)[r mod S] with
// e = ⌊r / S⌋ and S = steps_per_epoch·grad_accum·batch.  A function of (seed, step, micro) alone,
// so a resumed run reads what the uninterrupted one would have.
std::vector<int64_t> fixed_set_indices(const TrainConfig& config, int64_t step, int64_t micro);
// The number of optimiser steps the budget allows for this model.
int64_t budget_steps(const TrainConfig& config, const LanguageModelImpl& model);
// Learning rate at optimiser step `step` (1-based) of `total_steps`.
double learning_rate(const TrainConfig& config, int64_t step, int64_t total_steps);

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

struct TrainSummary {
  int64_t steps = 0;
  int64_t resumed_from_step = 0;          // 0 when started fresh
  double final_train_loss = 0;
  int64_t stopped_at_step = 0;            // > 0: early stop (stop_at_accuracy) at this step
  std::map<std::string, double> final;    // "text/bits_per_byte", "mqar/accuracy", ...
};

// Train and evaluate the point's model ({"model": explicit model, "train": {...}}).
TrainSummary run_training(const nlohmann::json& point_config, const std::string& run_dir,
                          const std::string& device, TrainingRecords& records);

}  // namespace mixlab
