// The run: a point's data, model, trainer, evaluator and run folder put together, then the
// optimiser steps with evaluation, checkpoints and an early stop between them.

#include "harness/train.h"

#include "data/corpus.h"
#include "harness/config.h"
#include "harness/device.h"
#include "harness/interrupt.h"
#include "harness/model_file.h"
#include "harness/peak_flops.h"
#include "harness/run_folder_records.h"
#include "harness/run_resume.h"
#include "harness/train_log.h"
#include "harness/training_data.h"

#include "data/rng.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <optional>

#include <unistd.h>

namespace mixlab {
namespace fs = std::filesystem;

namespace {

// The run's data: the corpus (or none), the training stream, and the held-out tasks with the
// model's vocabulary filled in.  Data first: the model's vocabulary must cover it.
struct TrainingData {
  std::unique_ptr<data::TokenizedCorpus> corpus;
  std::unique_ptr<TrainingStream> stream;
  std::vector<EvalTaskConfig> eval_tasks;
};

TrainingData load_training_data(const TrainConfig& c, const ModelConfig& model_config) {
  TrainingData out;
  out.eval_tasks = c.eval_tasks;
  for (auto& task : out.eval_tasks) {
    if (task.spec.vocab == 0) task.spec.vocab = model_config.vocab_size;
    if (task.spec.vocab > model_config.vocab_size)
      throw ConfigError("point", "train", "task " + task.spec.task + " uses vocab " + std::to_string(task.spec.vocab) +
                                              " > model.vocab_size " + std::to_string(model_config.vocab_size));
    try {
      data::SyntheticTask check(task.spec);
    } catch (const std::invalid_argument& error) {
      throw ConfigError("point", "train." + task.spec.task, error.what());
    }
  }
  if (c.source == "corpus") {
    const std::string dir = c.corpus_dir.empty() ? data::default_corpus_dir() : c.corpus_dir;
    if (!fs::is_directory(fs::path(dir) / "docs"))
      throw std::runtime_error("no corpus in " + dir + "/docs: build it with data/fetch_corpus.sh (or set "
                               "train.data.corpus_dir to a folder whose docs/ holds *.txt files)");
    out.corpus = std::make_unique<data::TokenizedCorpus>(data::prepare_corpus(dir, c.tokenizer, c.bpe_vocab));
    if (out.corpus->vocab_size > model_config.vocab_size)
      throw ConfigError("point", "model.vocab_size", "is " + std::to_string(model_config.vocab_size) + " but the " +
                                                         out.corpus->tokenizer + " tokenizer has " +
                                                         std::to_string(out.corpus->vocab_size) + " tokens");
  }
  out.stream = make_training_stream(c, out.corpus.get(), out.eval_tasks.front().spec);
  return out;
}

// One training run.  Data parallel (harness/distributed.h; a world of one without launcher
// variables): rank 0's initial weights everywhere, gradients averaged across ranks, rank 0 alone
// evaluates and writes; an early stop is rank 0's decision, broadcast at each evaluation.
class TrainingRun {
 public:
  TrainingRun(TrainConfig config, const json& point_config, const std::string& run_dir,
              const std::string& device_name, TrainingRecords& records)
      : config_(std::move(config)),
        model_json_(point_config.at("model")),
        run_dir_(run_dir),
        device_(device_name),
        data_(load_training_data(config_, parse_model_config(model_json_, "point", "model"))),
        job_(distributed::Job::get(device_name)),  // picks the rank's CUDA device before the model moves
        initial_model_(build_model()),
        trainer_(initial_model_, config_, device_, total_steps_),
        reducer_(job_, trainer_.model()->parameters()),
        evaluator_(config_, data_.corpus.get(), data_.eval_tasks, device_, trainer_.autocast()),
        fingerprint_(std::to_string(
            data::fnv1a64(json{{"model", model_json_}, {"train", training_identity(point_config.at("train"))}}.dump()))),
        folder_on_main_(run_dir, records),
        terminal_(::isatty(STDERR_FILENO)),
        log_(stderr, terminal_, total_steps_, step_tokens(), config_.log_every) {
    job_.broadcast_from_main(*trainer_.model());
    if (job_.world_size() > 1) trainer_.synchronise_gradients(&reducer_);
  }

  TrainSummary run() {
    resume();
    const int64_t checkpoint_every = config_.checkpoint_every > 0 ? config_.checkpoint_every : config_.eval_every;
    const int64_t profiled_step = state_.step + kProfiledStep;  // state_.step moves with every step
    for (int64_t step = state_.step + 1; step <= last_step_; ++step) {
      throw_if_interrupted();  // a sweep's Ctrl-C: the last checkpoint is where a rerun resumes
      {
        std::optional<ProfiledRange> range;  // this step alone in the profiler's range (bench/kernel_breakdown.sh)
        if (ProfiledRange::requested() && step == profiled_step) range.emplace();
        optimiser_step(step);
      }
      const bool evaluate = (config_.eval_every > 0 && step % config_.eval_every == 0) || step == total_steps_;
      const bool checkpoint = (checkpoint_every > 0 && step % checkpoint_every == 0) || step == total_steps_;
      if (evaluate || checkpoint || step == last_step_) {
        record_queued_step(/*always=*/true);  // rows up to `step` first
        window_open_ = false;                 // the next row's time starts after the evaluation
      }
      const double accuracy = evaluate && job_.is_main() ? log_evaluations(step) : std::nan("");
      bool stop = config_.stop_at_accuracy > 0 && step < total_steps_ && accuracy >= config_.stop_at_accuracy;
      if (evaluate && config_.stop_at_accuracy > 0 && job_.world_size() > 1)
        stop = job_.value_of_main(stop ? 1 : 0, device_) != 0;
      if (job_.is_main() && (checkpoint || stop)) {
        folder().flush();
        save_checkpoint(run_dir_, trainer_, state_, fingerprint_, model_json_);
      }
      if (stop) {
        if (job_.is_main()) stopped_early(step, accuracy);
        break;
      }
    }
    if (summary_.final.empty() && job_.is_main()) {
      // Resumed from the final checkpoint: its evaluations are recorded already; recompute the
      // figures for the summary without writing them again.
      for (const auto& e : evaluator_.run(trainer_.model()))
        if (!e.bucket) summary_.final[e.task + "/" + e.metric] = e.value;
    }
    folder().flush();  // every row in the database before the caller marks the point done
    summary_.steps = summary_.stopped_at_step > 0 ? summary_.stopped_at_step : total_steps_;
    return summary_;
  }

 private:
  using clock = std::chrono::steady_clock;
  // With $MIXLAB_PROFILE_RANGE, the session's step this far in (past a CUDA graph's capture and
  // warm-up) runs alone inside the CUDA profiler's range.
  static constexpr int64_t kProfiledStep = 20;

  int64_t step_tokens() const { return config_.grad_accum * config_.batch_size * config_.seq_len; }
  TrainingRecords& folder() { return job_.is_main() ? static_cast<TrainingRecords&>(folder_on_main_) : discarded_; }

  // The model from the seed (or --init-from), and the step budget it allows.
  LanguageModel build_model() {
    torch::manual_seed(config_.seed);
    LanguageModel model(parse_model_config(model_json_, "point", "model"));
    load_initial_weights(*model, model_json_);  // --init-from
    total_steps_ = budget_steps(config_, *model);
    step_flops_ = training_step_flops(config_, *model);
    if (total_steps_ < 1)
      throw ConfigError("point", "train", "the budget allows no optimiser step for this model (one step costs " +
                                              std::to_string(step_flops_) + " FLOPs)");
    return model;
  }

  // Rows go to the database and the run folder's record file; resuming from step k writes the
  // folder's rows up to k to the database again, so a new or incomplete database is made whole.
  void resume() {
    if (job_.is_main() && fs::exists(fs::path(run_dir_) / kCheckpointFile) && !folder_on_main_.exists()) {
      std::cerr << "mixlab train: " << run_dir_ << " holds a checkpoint but no " << RunFolderRecords::kFileName
                << " (its rows cannot be restored); training afresh\n";
      fs::remove(fs::path(run_dir_) / kCheckpointFile);
    }
    if (auto loaded = load_checkpoint_on_every_rank(job_, run_dir_, trainer_, fingerprint_, device_)) {
      state_ = *loaded;
      if (job_.is_main()) log_.resumed(state_.step, (fs::path(run_dir_) / kCheckpointFile).string());
    }
    summary_.resumed_from_step = state_.step;
    folder().discard_after(state_.step);
    // MFU against the job's aggregate peak: the logged FLOPs and tokens/s count the global batch.
    const double peak = measured_peak_flops(Device{device_.is_cuda() ? "cuda" : "cpu",
                                                   trainer_.autocast() ? "bfloat16" : "float32"}) *
                        job_.world_size();
    folder().set_peak_flops(peak);
    log_.show_mfu(step_flops_ / static_cast<double>(step_tokens()), peak);
    // A run that stopped early at its checkpoint's step is finished.
    last_step_ = total_steps_;
    if (const auto stopped = read_early_stop(run_dir_, fingerprint_); stopped && *stopped == state_.step && state_.step > 0)
      last_step_ = summary_.stopped_at_step = state_.step;
    else if (job_.is_main())
      fs::remove(fs::path(run_dir_) / kEarlyStopFile);
    session_start_ = clock::now();
    elapsed_before_ = state_.elapsed_s;
  }

  // A step queued on the device whose row is not written yet: its loss is still on its way.
  struct QueuedStep {
    int64_t step;
    PendingLoss loss;
    std::string implementation, execution, why_not_graphed;
  };

  // Queues `step`, then writes the previous step's row: reading that loss waits for the previous
  // step only, so this step's batch was made while the GPU still ran the previous one.
  void optimiser_step(int64_t step) {
    if (!window_open_) {
      window_start_ = clock::now();
      window_first_step_ = step - 1;
      window_open_ = true;
    }
    std::vector<data::Batch> micro;
    for (int64_t m = 0; m < config_.grad_accum; ++m) micro.push_back(job_.shard(data_.stream->batch(step, m)));
    auto loss = trainer_.queue(micro, step);
    record_queued_step();
    queued_.emplace(QueuedStep{step, std::move(loss), trainer_.implementation(), trainer_.execution(),
                               trainer_.why_not_graphed()});
  }

  // Writes the queued step's row (the database, the run folder, the log line) when `always` or
  // the step is a multiple of train.curve_every; otherwise its loss is never read (the host does
  // not wait for the GPU) and no row is written.  A row's tokens/s is over the steps and the time
  // since the previous row: in a run of queued steps, the rate of the pipeline.  A loss that is
  // not finite is found at the next row (it stays so: the weights it updated are not finite).
  void record_queued_step(bool always = false) {
    if (!queued_) return;
    QueuedStep done = std::move(*queued_);
    queued_.reset();
    const int64_t step = done.step;
    const auto now = clock::now();
    const double session_seconds = std::chrono::duration<double>(now - session_start_).count();
    state_ = {step, elapsed_before_ + session_seconds};
    if (!always && step % config_.curve_every != 0) return;
    const double loss = job_.mean_over_ranks(done.loss.value(), device_);
    if (!std::isfinite(loss))
      throw std::runtime_error("training loss is " + std::to_string(loss) + " at step " + std::to_string(step));
    const auto read = clock::now();  // after the wait for the loss, as before curve_every
    const double window_seconds = std::chrono::duration<double>(read - window_start_).count();
    const int64_t window_steps = std::max<int64_t>(step - window_first_step_, 1);
    window_start_ = read;
    window_first_step_ = step;
    state_.elapsed_s = elapsed_before_ + std::chrono::duration<double>(read - session_start_).count();
    const double lr = learning_rate(config_, step, total_steps_);
    folder().set_implementation(done.implementation);
    folder().set_execution(done.execution);
    if (!done.why_not_graphed.empty() && done.why_not_graphed != reported_why_not_graphed_ && job_.is_main()) {
      reported_why_not_graphed_ = done.why_not_graphed;
      std::cerr << "  train.execution " << config_.execution << ": the step runs eagerly: " << reported_why_not_graphed_
                << "\n";
    }
    folder().log_step(step, step * step_tokens(), step * step_flops_, loss, lr,
                      window_steps * step_tokens() / std::max(window_seconds, 1e-9), state_.elapsed_s);
    summary_.final_train_loss = loss;
    const bool log_steps = config_.progress || !terminal_;  // train.progress switches the terminal line off
    if (log_steps && job_.is_main())
      log_.step(step, loss, lr, state_.elapsed_s - elapsed_before_, state_.elapsed_s);
  }

  // Records the evaluations at `step`; returns the accuracy on the training task's own held-out
  // set (the first task evaluated; NaN when training on the corpus).
  double log_evaluations(int64_t step) {
    std::map<std::string, double> headline;
    double training_task_accuracy = std::nan("");
    for (const auto& e : evaluator_.run(trainer_.model())) {
      folder().log_evaluation(step, e.task, e.metric, e.value, e.seq_len, e.bucket, e.extra_json);
      if (!e.bucket) headline[e.task + "/" + e.metric] = e.value;
      if (e.task == config_.source && e.metric == "accuracy" && std::isnan(training_task_accuracy))
        training_task_accuracy = e.value;
    }
    for (const auto& [name, value] : headline) summary_.final[name] = value;
    log_.evaluation(step, headline);
    return training_task_accuracy;
  }

  void stopped_early(int64_t step, double accuracy) {
    write_early_stop(run_dir_, step, accuracy, fingerprint_);
    summary_.stopped_at_step = step;
    std::cerr << "  stop  step " << step << "/" << total_steps_ << "  " << config_.source << "/accuracy " << accuracy
              << " >= train.stop_at_accuracy " << config_.stop_at_accuracy << "\n";
  }

  const TrainConfig config_;
  const json model_json_;
  const std::string run_dir_;
  const torch::Device device_;
  TrainingData data_;
  distributed::Job& job_;
  // Declared in this order: build_model() sets total_steps_ and step_flops_ while initial_model_
  // is initialised, before trainer_ reads them.
  int64_t total_steps_ = 0, last_step_ = 0;  // last_step_: set by resume()
  double step_flops_ = 0;
  LanguageModel initial_model_;
  Trainer trainer_;
  distributed::GradientReducer reducer_;
  Evaluator evaluator_;
  const std::string fingerprint_;
  RunFolderRecords folder_on_main_;
  distributed::DiscardedRecords discarded_;
  const bool terminal_;
  TrainLog log_;
  TrainSummary summary_;
  Checkpoint state_;
  clock::time_point session_start_;
  std::string reported_why_not_graphed_;
  std::optional<QueuedStep> queued_;  // the step queued last, its row not yet written
  clock::time_point window_start_;    // where the time of the next row written starts
  int64_t window_first_step_ = 0;     // the step the window starts after
  bool window_open_ = false;          // false: the next optimiser step starts a new window
  double elapsed_before_ = 0;
};

}  // namespace

TrainSummary run_training(const json& point_config, const std::string& run_dir, const std::string& device_name,
                          TrainingRecords& records) {
  if (!point_config.contains("train")) throw ConfigError("point", "train", "is missing");
  TrainConfig config = parse_train_config(point_config["train"], "point", "train");
  // train.threads applies to this run only: the sweep's next point gets the setting back.
  const ScopedThreadCount thread_count(config.threads);
  return TrainingRun(std::move(config), point_config, run_dir, device_name, records).run();
}

}  // namespace mixlab
