// `mixlab train`: one training run, through the same code path as a sweep point's train phase.
//
//   mixlab train --preset transformer --set train.steps=200 --set model.d_model=64
//   mixlab train --config point.json --set train.data.source=mqar [--db results.db] [--log curve.jsonl]
//
// The config is {"model": {...}, "train": {...}} (a point of a sweep); --preset starts the model
// from experiments/presets/NAME.json and the train section from the defaults in docs/training.md.

#include "harness/cli/command.h"
#include "harness/config.h"
#include "harness/train.h"

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>

namespace mixlab::cli {
namespace {

struct TrainOptions {
  std::string preset;
  std::string config_file;
  std::vector<std::string> sets;
  std::string db;
  std::string log;
  std::string run_dir;
  std::string device = "cpu";
};

// Curves and evaluations to the terminal (evaluations only) and to an optional JSON-lines file.
class PrintedRecords : public TrainingRecords {
 public:
  explicit PrintedRecords(const std::string& log_file) {
    if (!log_file.empty()) {
      log_.open(log_file, std::ios::app);
      if (!log_) throw std::runtime_error(log_file + ": cannot open for writing");
    }
  }
  void log_step(int64_t step, int64_t tokens, double flops, double loss, double lr, double tokens_per_s,
                double elapsed_s) override {
    if (log_.is_open())
      log_ << json{{"kind", "step"}, {"step", step}, {"tokens", tokens}, {"flops", flops}, {"loss", loss},
                   {"lr", lr}, {"tokens_per_s", tokens_per_s}, {"elapsed_s", elapsed_s}}.dump()
           << "\n";
  }
  void log_evaluation(int64_t step, const std::string& task, const std::string& metric, double value,
                      std::optional<int64_t> seq_len, std::optional<int64_t> bucket,
                      const std::string& extra_json) override {
    json row{{"kind", "eval"}, {"step", step}, {"task", task}, {"metric", metric}, {"value", value},
             {"extra", json::parse(extra_json)}};
    if (seq_len) row["seq_len"] = *seq_len;
    if (bucket) row["bucket"] = *bucket;
    if (log_.is_open()) log_ << row.dump() << "\n";
    if (!bucket && metric != "perplexity")
      std::cout << "  eval step " << std::setw(6) << step << "  " << task << " " << metric << " = "
                << std::setprecision(4) << std::fixed << value << "\n"
                << std::defaultfloat;
  }
  void discard_after(int64_t step) override {
    if (log_.is_open()) log_ << json{{"kind", "discard_after"}, {"step", step}}.dump() << "\n";
  }

 private:
  std::ofstream log_;
};

int run_train(const TrainOptions& options) {
  json config;
  std::string file = "--preset";
  if (!options.config_file.empty()) {
    file = options.config_file;
    config = read_json_file(file);
  }
  if (!options.preset.empty()) config["model"] = json{{"preset", options.preset}};
  if (!config.contains("model")) throw ConfigError(file, "model", "is missing: give --preset NAME or a config with a model");
  if (!config.contains("train")) config["train"] = json{{"steps", 200}};
  for (const auto& assignment : options.sets) apply_dotted_set(config, assignment);
  config["model"] = resolve_model_json(config["model"], file, "model");
  parse_train_config(config["train"], file, "train");  // errors before anything is built

  if (!options.db.empty())
    throw ConfigError("--db", "", "this build has no results store yet (harness/store); use --log FILE.jsonl");
  const std::string run_dir = options.run_dir.empty()
                                  ? "results/train/" + std::to_string(std::hash<std::string>{}(config.dump()))
                                  : options.run_dir;
  std::cout << "mixlab train: " << model_label(config["model"]) << " on " << config["train"].value("data", json::object()).value("source", "corpus")
            << ", run folder " << run_dir << "\n";
  PrintedRecords records(options.log);
  const auto summary = run_training(config, run_dir, options.device, records);
  std::cout << "done: " << summary.steps << " steps";
  if (summary.resumed_from_step > 0) std::cout << " (resumed from step " << summary.resumed_from_step << ")";
  std::cout << ", final training loss " << summary.final_train_loss << "\n";
  for (const auto& [name, value] : summary.final) std::cout << "  " << name << " = " << value << "\n";
  return 0;
}

}  // namespace

MIXLAB_REGISTER_COMMAND(train, "train and evaluate one model (the train phase of a sweep point)",
                        [](CLI::App& app) -> Action {
                          auto options = std::make_shared<TrainOptions>();
                          app.add_option("--preset", options->preset, "model preset (experiments/presets/NAME.json)");
                          app.add_option("--config", options->config_file, "JSON file with model and train sections");
                          app.add_option("--set", options->sets, "override a field: model.d_model=64, train.steps=100")
                              ->take_all();
                          app.add_option("--db", options->db, "results database to write the run into");
                          app.add_option("--log", options->log, "append curves and evaluations as JSON lines");
                          app.add_option("--run-dir", options->run_dir, "checkpoint folder (default results/train/<hash>)");
                          app.add_option("--device", options->device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
                          return [options] { return run_train(*options); };
                        });

}  // namespace mixlab::cli
