#pragma once
// The training phase: a point's model trained on the corpus or a synthetic task, evaluated every
// k steps and at the end, with curves and evaluations written through TrainingRecords
// (docs/training.md describes the "train" section).  In parts:
//
//   harness/train_config.h     the "train" section, the budget, the schedule
//   harness/training_data.h    what a run trains on, batch by batch
//   harness/trainer.h          one optimiser step (loss, AdamW, clipping, accumulation)
//   harness/evaluation.h       the evaluations of a run
//   harness/run_resume.h       the checkpoint and early-stop marker in the run folder
//   harness/train.h (this)     the run that puts them together
//
//   early stop  with stop_at_accuracy, training ends at the first evaluation whose accuracy on
//               the training task's held-out set reaches it (with epochs: evaluated each epoch)
//   determinism on the CPU a given seed gives the same run: the initial weights come from
//               torch::manual_seed(seed), batch (s, m) from the data seed and (s, m) alone
//   resume      a checkpoint (weights, optimiser state, step, elapsed time, RNG state) is written
//               under run_dir every checkpoint_every steps and at the end, atomically (rename);
//               a restarted run loads it, discards records after its step and continues the
//               curve exactly

#include "harness/evaluation.h"
#include "harness/train_config.h"
#include "harness/trainer.h"
#include "harness/training_records.h"

#include <nlohmann/json.hpp>

#include <map>
#include <string>

namespace mixlab {

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
