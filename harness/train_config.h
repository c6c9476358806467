#pragma once
// The "train" section of a point (docs/training.md) and what follows from it alone: the budget
// in optimiser steps, the learning-rate schedule, the order of a fixed example set.
//
//   schedule    lr(s) = lr·s/W for s ≤ W (linear warm-up over W steps), then cosine decay
//               lr(s) = min_lr + (lr − min_lr)·½(1 + cos(π·(s − W)/(T − W)))  to min_lr at s = T
//   budget      exactly one of steps, tokens (T = ⌊tokens / (grad_accum·batch·seq_len)⌋),
//               flop_budget (T = ⌊F / (3·cost(grad_accum·batch, seq_len).flops)⌋): the same
//               compute for every configuration of a sweep, or epochs over a fixed example set
//               (T = E·⌊N / (grad_accum·batch)⌋, N = data.examples; the protocol of Zoology, arXiv
//               2312.04927, Figure 2: epochs over 100k fixed examples, stop at 0.99 accuracy)

#include "data/synthetic.h"
#include "harness/model.h"
#include "reports/point_identity.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace mixlab {

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
  std::string execution = "eager"; // auto (CUDA graphs on CUDA, eager on the CPU) | cuda_graph | eager
  int64_t log_every = 0;           // off a terminal: a log line every k steps (0: about 20 per run)
  int64_t curve_every = 1;         // a train_log row every k optimiser steps (and at every evaluation,
                                   // checkpoint and the last step); the other steps' losses are not read
};

// training_identity(train): the "train" object without train.execution and train.curve_every,
// from which a point's id and its run's fingerprint are made (reports/point_identity.h).

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

}  // namespace mixlab
