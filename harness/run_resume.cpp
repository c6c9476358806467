#include "harness/run_resume.h"

#include "harness/checkpoint.h"

#include <fstream>
#include <iostream>

namespace mixlab {
namespace fs = std::filesystem;


// Weights, optimiser state by parameter name, step, elapsed time and the CPU generator's state
// in one safetensors file (harness/checkpoint.h), written beside the old one and renamed over it.
void save_checkpoint(const fs::path& run_dir, Trainer& trainer, const Checkpoint& state, const std::string& fingerprint,
                     const json& model_json) {
  save_training_checkpoint((run_dir / kCheckpointFile).string(), *trainer.model(), trainer.optimizer(),
                           {state.step, state.elapsed_s, fingerprint}, model_json);
}

// Loads the checkpoint when it belongs to this configuration; a stale or unreadable one is
// removed and the run restarts cleanly.
std::optional<Checkpoint> load_checkpoint(const fs::path& run_dir, Trainer& trainer, const std::string& fingerprint) {
  const fs::path file = run_dir / kCheckpointFile;
  if (!fs::exists(file)) return std::nullopt;
  try {
    const auto stored = read_checkpoint_state(file.string());
    if (stored->fingerprint != fingerprint) throw std::runtime_error("written for another configuration");
    const CheckpointState loaded = load_training_checkpoint(file.string(), *trainer.model(), trainer.optimizer());
    return Checkpoint{loaded.step, loaded.elapsed_s};
  } catch (const std::exception& error) {
    const std::string what = error.what();  // a c10::Error carries a backtrace after its first line
    std::cerr << "mixlab train: ignoring checkpoint " << file << " (" << what.substr(0, what.find('\n'))
              << "); starting afresh\n";
    fs::remove(file);
    return std::nullopt;
  }
}

// Data-parallel resumption: rank 0 decides (and removes a stale checkpoint); the other ranks
// then read the same file, so every rank continues from the same weights and optimiser state.
std::optional<Checkpoint> load_checkpoint_on_every_rank(distributed::Job& job, const fs::path& run_dir, Trainer& trainer,
                                                        const std::string& fingerprint, torch::Device device) {
  std::optional<Checkpoint> loaded;
  if (job.is_main()) loaded = load_checkpoint(run_dir, trainer, fingerprint);
  const int64_t step = job.value_of_main(loaded ? loaded->step : 0, device);
  if (!job.is_main() && step > 0) {
    const CheckpointState read = load_training_checkpoint((run_dir / kCheckpointFile).string(), *trainer.model(),
                                                          trainer.optimizer());
    if (read.step != step)
      throw std::runtime_error("rank " + std::to_string(job.rank()) + " read step " + std::to_string(read.step) + " from " +
                               (run_dir / kCheckpointFile).string() + " but rank 0 resumes from step " +
                               std::to_string(step) + " (every rank must see rank 0's run folder)");
    loaded = Checkpoint{read.step, read.elapsed_s};
  }
  return loaded;
}

// A run that stopped early (train.stop_at_accuracy) leaves early_stop.json beside its final
// checkpoint, {"step", "accuracy", "fingerprint"}, so that a rerun resuming from that checkpoint
// does not train past it.

void write_early_stop(const fs::path& run_dir, int64_t step, double accuracy, const std::string& fingerprint) {
  const fs::path file = run_dir / kEarlyStopFile, partial = run_dir / (std::string(kEarlyStopFile) + ".partial");
  {
    std::ofstream out(partial);
    out << json{{"step", step}, {"accuracy", accuracy}, {"fingerprint", fingerprint}}.dump() << "\n";
    if (!out) throw std::runtime_error("cannot write " + partial.string());
  }
  fs::rename(partial, file);
}

// The step of this configuration's early stop, when the run folder records one.
std::optional<int64_t> read_early_stop(const fs::path& run_dir, const std::string& fingerprint) {
  std::ifstream in(run_dir / kEarlyStopFile);
  if (!in) return std::nullopt;
  const json marker = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!marker.is_object() || marker.value("fingerprint", "") != fingerprint || !marker.contains("step") ||
      !marker["step"].is_number_integer())
    return std::nullopt;
  return marker["step"].get<int64_t>();
}

}  // namespace mixlab
