#pragma once
// A training checkpoint as one safetensors file, everything keyed by parameter name
// (docs/training.md, "Checkpoints"):
//
//   <name>                          the model's weights, mixlab names (harness/model.h)
//   optimizer.step.<name>           AdamW's step count (the same for every parameter), I64 []
//   optimizer.exp_avg.<name>        first moment m, the parameter's shape
//   optimizer.exp_avg_sq.<name>     second moment v, the parameter's shape
//   rng.cpu                         the CPU generator's state, U8
//   __metadata__                    format "mixlab-checkpoint", step, elapsed_s, fingerprint,
//                                   mixlab_model (the explicit model JSON)
//
// Names, not memory addresses: a checkpoint loads into a fresh process, `mixlab export` reads
// its weights as a model file (harness/model_file.h), and Python reads it with safetensors.

#include "harness/config.h"
#include "harness/flat_adamw.h"

#include <torch/torch.h>

#include <optional>
#include <string>

namespace mixlab {

struct CheckpointState {
  int64_t step = 0;
  double elapsed_s = 0;
  std::string fingerprint;  // the training configuration it belongs to
};

// Written to PATH.tmp and renamed: a crash leaves the old file or the new one, never half.
void save_training_checkpoint(const std::string& path, const torch::nn::Module& model,
                              const FlatAdamW& optimizer, const CheckpointState& state, const json& model_json);

// Reads the metadata only (nullopt when the file does not exist).
std::optional<CheckpointState> read_checkpoint_state(const std::string& path);

// Loads weights, optimizer state (by name) and the CPU generator's state into a model and an
// optimizer built for the same configuration.  Throws (SafetensorsError) on a malformed file
// or names/shapes that do not fit.
CheckpointState load_training_checkpoint(const std::string& path, torch::nn::Module& model,
                                         FlatAdamW& optimizer);

}  // namespace mixlab
