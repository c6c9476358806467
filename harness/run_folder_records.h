#pragma once
// A training run's rows kept in its run folder as well as in the database, so that no database
// ever lacks the rows of a run whose checkpoint it resumes from (docs/training.md, "The run
// folder").
//
//   RUN_DIR/records.jsonl   one JSON object per train_log or evaluation row, appended (and
//                           flushed) as the row is logged, before the database has it:
//                             {"step": s, "tokens": t, "flops": f, "loss": l, "lr": r,
//                              "tokens_per_s": v, "elapsed_s": e, "implementation": i,
//                              "execution": x, "peak_flops": p}  (train_log)
//                             {"step": s, "task": T, "metric": M, "value": v, "seq_len": n|null,
//                              "bucket": b|null, "extra": "{...}"}                    (evaluation)
//
// Resuming from a checkpoint at step k (restore_to): the rows after k are dropped from the file
// and the database, and every row up to k is written to the database again (INSERT OR REPLACE:
// idempotent).  A re-run into a new database, or a database that lost rows, gets them back.

#include "harness/training_records.h"

#include <cstdint>
#include <filesystem>
#include <string>

namespace mixlab {

class RunFolderRecords : public TrainingRecords {
 public:
  RunFolderRecords(const std::filesystem::path& run_dir, TrainingRecords& database);

  static constexpr const char* kFileName = "records.jsonl";
  // Whether the run folder holds a record file (a checkpoint without one cannot restore its rows).
  bool exists() const;

  void log_step(int64_t step, int64_t tokens, double flops, double loss, double lr, double tokens_per_s,
                double elapsed_s) override;
  void log_evaluation(int64_t step, const std::string& task, const std::string& metric, double value,
                      std::optional<int64_t> seq_len, std::optional<int64_t> bucket,
                      const std::string& extra_json) override;
  // Keeps the file's rows up to `step`, discards later ones in the database and writes the kept
  // rows to the database again.  Returns the number of rows written.
  int64_t restore_to(int64_t step);
  void discard_after(int64_t step) override { restore_to(step); }
  // The file is written as rows come; the database's kept-back rows are written now.
  void flush() override { database_.flush(); }
  // Passed on to the database, and kept in the file's train_log rows as "implementation".
  void set_implementation(const std::string& implementation) override;
  void set_execution(const std::string& execution) override;
  // Passed on to the database, and kept in the file's train_log rows as "peak_flops".
  void set_peak_flops(double peak_flops) override;

 private:
  void append(const std::string& line);
  std::filesystem::path file_;
  TrainingRecords& database_;
  std::string implementation_, execution_;
  double peak_flops_ = 0;
};

}  // namespace mixlab
