#pragma once
// The seam between the sweep runner (harness/sweep) and the training phase (harness/train).
//
// harness/train.cpp registers a TrainingHook from a static initialiser.  When a resolved point
// has a "train" section, the sweep validates it with hook.validate before anything runs and,
// after measuring, calls hook.run; the point is marked done only when run returns normally.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace mixlab {

// Where the training phase reports curves and evaluations (the store implements it).  Rows are
// keyed by step (and task, metric, seq_len, bucket): writing a row again replaces it, so the run
// folder's rows can be written again on resumption (harness/run_folder_records.h).
class TrainingRecords {
 public:
  virtual ~TrainingRecords() = default;
  virtual void log_step(int64_t step, int64_t tokens, double flops, double loss, double lr,
                        double tokens_per_s, double elapsed_s) = 0;
  virtual void log_evaluation(int64_t step, const std::string& task, const std::string& metric,
                              double value, std::optional<int64_t> seq_len, std::optional<int64_t> bucket,
                              const std::string& extra_json) = 0;
  // What computed the steps logged from now on (core/implementation.h), e.g. "selective_scan=kernel".
  virtual void set_implementation(const std::string& implementation) {}
  // A resumed run restarts after `step`: forget curve rows and evaluations recorded after it.
  virtual void discard_after(int64_t step) = 0;
};

struct TrainingHook {
  // Throws ConfigError("FILE", "PATH.train.x", "...") for a bad train section.
  std::function<void(const nlohmann::json& train, const std::string& file, const std::string& path)> validate;
  // point_config: the full resolved point ({"model": explicit model, "measure": ..., "train": ...}).
  // run_dir: a folder private to this point for its checkpoint and records.jsonl (resume after a
  // crash, rows back into a database that lacks them; docs/training.md, "The run folder").
  // device: "cpu" or "cuda".
  std::function<void(const nlohmann::json& point_config, const std::string& run_dir,
                     const std::string& device, TrainingRecords& records)> run;
};

void register_training_hook(TrainingHook hook);
const TrainingHook* training_hook();  // nullptr when no training phase is built in

}  // namespace mixlab
