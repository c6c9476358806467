// A point's training rows in the store (harness/training_records.h): train_log and evaluations.
//
// Curve rows are written behind: log_step() keeps the row and the rows kept so far go to the
// database in one transaction once the oldest has waited kFlushSeconds (or kFlushRows are
// kept), before any evaluation row, before discard_after(), on flush() and when the object is
// destroyed.  One transaction per optimiser step was a commit per step (tens of microseconds,
// against a replayed Zoology-sized step of under a millisecond) under the write lock that every
// worker of a sweep shares.
// Nothing is lost by waiting: a step's row is in the run folder's records.jsonl before it is in
// the database (harness/run_folder_records.h), and a resumed run writes those rows again.

#include <chrono>
#include <cmath>
#include <iostream>
#include <vector>

#include "harness/store.h"

namespace mixlab {
namespace {

constexpr double kFlushSeconds = 2.0;
constexpr size_t kFlushRows = 4096;

// One train_log row as log_step() was given it, with the implementation, execution and peak
// rate in force at that step.
struct StepRow {
  int64_t step, tokens;
  double flops, loss, lr, tokens_per_s, elapsed_s;
  std::string implementation, execution;
  double peak_flops;
};

class StoreTrainingRecords : public TrainingRecords {
 public:
  StoreTrainingRecords(Store& store, std::string point_id) : store_(store), point_id_(std::move(point_id)) {}

  ~StoreTrainingRecords() override {
    try {
      flush();
    } catch (const std::exception& error) {  // a destructor must not throw; the run folder keeps the rows
      std::cerr << "mixlab: " << pending_.size() << " training rows of point " << point_id_
                << " not written to the database: " << error.what() << "\n";
    }
  }

  void log_step(int64_t step, int64_t tokens, double flops, double loss, double lr, double tokens_per_s,
                double elapsed_s) override {
    if (pending_.empty()) oldest_ = std::chrono::steady_clock::now();
    pending_.push_back({step, tokens, flops, loss, lr, tokens_per_s, elapsed_s, implementation_, execution_, peak_flops_});
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - oldest_).count();
    if (pending_.size() >= kFlushRows || waited >= kFlushSeconds) flush();
  }

  void flush() override {
    if (pending_.empty()) return;
    store_.transaction([&] {
      Statement insert(store_.handle(),
                       "INSERT OR REPLACE INTO train_log (point_id, step, tokens, flops, loss, lr, tokens_per_s, "
                       "elapsed_s, implementation, mfu, peak_flops, execution) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)");
      for (const auto& row : pending_) {
        insert.reset();
        bind_step(insert, row);
        insert.run();
      }
    });
    pending_.clear();
  }

  // seq_len and bucket are part of the primary key; "not applicable" is stored as -1.
  void log_evaluation(int64_t step, const std::string& task, const std::string& metric, double value,
                      std::optional<int64_t> seq_len, std::optional<int64_t> bucket,
                      const std::string& extra_json) override {
    flush();  // the curve up to the evaluation first
    store_.transaction([&] {
      Statement insert(store_.handle(),
                       "INSERT OR REPLACE INTO evaluations (point_id, step, task, metric, value, seq_len, bucket, "
                       "extra_json, state_bytes) VALUES (?,?,?,?,?,?,?,?,?)");
      insert.bind(1, point_id_).bind(2, step).bind(3, task).bind(4, metric).bind(5, value)
          .bind(6, seq_len.value_or(-1)).bind(7, bucket.value_or(-1)).bind(8, extra_json.empty() ? "{}" : extra_json);
      const auto extra = nlohmann::json::parse(extra_json.empty() ? "{}" : extra_json, nullptr, false);
      if (extra.is_object() && extra.contains("state_bytes") && extra["state_bytes"].is_number())
        insert.bind(9, extra["state_bytes"].get<double>());
      else
        insert.bind(9, nullptr);
      insert.run();
    });
  }

  void set_implementation(const std::string& implementation) override { implementation_ = implementation; }
  void set_peak_flops(double peak_flops) override { peak_flops_ = peak_flops; }
  void set_execution(const std::string& execution) override { execution_ = execution; }

  void discard_after(int64_t step) override {
    flush();
    store_.transaction([&] {
      Statement a(store_.handle(), "DELETE FROM train_log WHERE point_id = ? AND step > ?");
      a.bind(1, point_id_).bind(2, step).run();
      Statement b(store_.handle(), "DELETE FROM evaluations WHERE point_id = ? AND step > ?");
      b.bind(1, point_id_).bind(2, step).run();
    });
  }

 private:
  // mfu = (flops / step) / (step seconds) / peak = flops · tokens_per_s / (tokens · peak); NULL
  // while the peak is unknown (0).
  void bind_step(Statement& insert, const StepRow& row) const {
    insert.bind(1, point_id_).bind(2, row.step).bind(3, row.tokens).bind(4, row.flops).bind(5, row.loss)
        .bind(6, row.lr).bind(7, row.tokens_per_s).bind(8, row.elapsed_s);
    if (row.implementation.empty()) insert.bind(9, nullptr); else insert.bind(9, row.implementation);
    if (row.peak_flops > 0 && row.tokens > 0 && std::isfinite(row.flops) && std::isfinite(row.tokens_per_s))
      insert.bind(10, row.flops * row.tokens_per_s / (static_cast<double>(row.tokens) * row.peak_flops))
          .bind(11, row.peak_flops);
    else
      insert.bind(10, nullptr).bind(11, nullptr);
    if (row.execution.empty()) insert.bind(12, nullptr); else insert.bind(12, row.execution);
  }

  Store& store_;
  std::string point_id_;
  std::string implementation_, execution_;
  double peak_flops_ = 0;  // 0: unknown, mfu stays NULL
  std::vector<StepRow> pending_;  // log_step() rows not yet in the database, in order
  std::chrono::steady_clock::time_point oldest_;
};

}  // namespace

std::unique_ptr<TrainingRecords> Store::training_records(const std::string& point_id) {
  return std::make_unique<StoreTrainingRecords>(*this, point_id);
}

}  // namespace mixlab
