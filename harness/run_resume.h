#pragma once
// Where a training run resumes: the checkpoint in its run folder (weights, optimiser state, step,
// elapsed time, written atomically every checkpoint_every steps and at the end) and, after an
// early stop, the marker that keeps a rerun from training past it.  Both carry the fingerprint
// of the configuration; a file written for another configuration is ignored.

#include "harness/distributed.h"
#include "harness/trainer.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>

namespace mixlab {

struct Checkpoint {
  int64_t step = 0;
  double elapsed_s = 0;
};

inline constexpr const char* kCheckpointFile = "checkpoint.safetensors";
// {"step", "accuracy", "fingerprint"} beside the final checkpoint of a run that stopped early.
inline constexpr const char* kEarlyStopFile = "early_stop.json";

void save_checkpoint(const std::filesystem::path& run_dir, Trainer& trainer, const Checkpoint& state,
                     const std::string& fingerprint, const nlohmann::json& model_json);
// The checkpoint when it belongs to this configuration; a stale or unreadable one is removed.
std::optional<Checkpoint> load_checkpoint(const std::filesystem::path& run_dir, Trainer& trainer,
                                          const std::string& fingerprint);
// Rank 0 decides; every other rank then reads the same file (or fails, naming the step).
std::optional<Checkpoint> load_checkpoint_on_every_rank(distributed::Job& job, const std::filesystem::path& run_dir,
                                                        Trainer& trainer, const std::string& fingerprint,
                                                        torch::Device device);
void write_early_stop(const std::filesystem::path& run_dir, int64_t step, double accuracy,
                      const std::string& fingerprint);
// The step of this configuration's early stop, when the run folder records one.
std::optional<int64_t> read_early_stop(const std::filesystem::path& run_dir, const std::string& fingerprint);

}  // namespace mixlab
