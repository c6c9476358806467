#pragma once
// Where a training run reports curves and evaluations: the store's rows for a point
// (harness/store.h), a run folder's record file (harness/run_folder_records.h), or nowhere (the
// ranks other than 0 of a data-parallel job).

#include <cstdint>
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
  // How the steps logged from now on ran (train.execution): "cuda_graph" or "eager".
  virtual void set_execution(const std::string& execution) {}
  // The device's measured matrix-product rate (harness/peak_flops.h): rows logged from now on
  // carry mfu = (flops / step) / (step seconds) / peak = flops · tokens_per_s / (tokens · peak).
  virtual void set_peak_flops(double peak_flops) {}
  // A resumed run restarts after `step`: forget curve rows and evaluations recorded after it.
  virtual void discard_after(int64_t step) = 0;
  // Every row logged so far is where it is read from.  A store may keep curve rows back for a
  // moment and write them together (harness/store_training_records.cpp); the run calls this
  // before a checkpoint and at its end, so that a point marked done has all its rows.
  virtual void flush() {}
};

}  // namespace mixlab
