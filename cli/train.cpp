// `mixlab train`: one training run, as a one-point sweep: the same code path (spec resolution,
// store, training hook, resumption) as a sweep point with a train section.
//
//   mixlab train --preset transformer --set train.steps=200 --set model.d_model=64
//   mixlab train --config point.json --set train.data.source=mqar --db results/train.db
//
// The config is {"model": {...}, "train": {...}} and optionally "measure" (default: no
// measurement).  --preset starts the model from experiments/presets/NAME.json; without a train
// section the defaults of docs/training.md apply with 200 steps.  Without --db the results live
// in an in-memory database and the final evaluations are printed; checkpoints go to
// RUN_ROOT/<point id>/ either way, so an interrupted run resumes.

#include "cli/command.h"
#include "cli/set_option.h"
#include "harness/config.h"
#include "harness/curves_csv.h"
#include "harness/model_file.h"
#include "harness/device.h"
#include "harness/distributed.h"
#include "harness/spec.h"
#include "harness/store.h"
#include "harness/sweep.h"
#include "harness/train.h"

#include <iomanip>
#include <iostream>

namespace mixlab::cli {
namespace {

struct TrainOptions {
  std::string preset;
  std::string config_file;
  std::vector<std::string> sets;
  std::string db;
  std::string run_root = "results/runs";
  std::string device = "auto";
  std::string name = "train";
  std::string init_from;
  std::string curves_csv;
  bool force = false;
};

int run_train(const TrainOptions& options) {
  std::cout << std::unitbuf;  // in a log, these lines keep their place among the training lines (stderr)
  json config = json::object();
  std::string file = "--preset";
  if (!options.config_file.empty()) {
    file = options.config_file;
    config = read_json_file(file);
  }
  if (!options.preset.empty()) config["model"] = json{{"preset", options.preset}};
  if (!options.init_from.empty()) {
    if (!config.contains("model")) config["model"] = model_json_of(options.init_from);  // the file's own model
    config["model"]["init_from"] = options.init_from;
  }
  if (!config.contains("model"))
    throw ConfigError(file, "model", "is missing: give --preset NAME, --init-from MODEL or a config with a model");
  if (!config.contains("train")) config["train"] = json{{"steps", 200}};
  if (!config.contains("measure")) config["measure"] = json{{"phases", json::array()}};
  apply_section_sets(config, options.sets, {"model", "measure", "train"}, "mixlab train");

  const std::string device = resolve_device_kind(options.device, "--device");
  const json raw = {{"name", options.name}, {"description", "mixlab train"}, {"base", config}};
  const SweepSpec spec = expand_spec(raw, file, device);
  if (spec.points.size() != 1) throw ConfigError(file, "", "resolves to " + std::to_string(spec.points.size()) + " points; use mixlab sweep");
  const SweepPoint& point = spec.points.front();

  // Under torchrun or srun (docs/distributed.md) every rank trains; rank 0 alone writes the
  // database and the CSV.  The rendezvous happens here, before any rank can finish early.
  bool main_rank = true;
  try {
    main_rank = distributed::Job::get(device).is_main();
  } catch (const std::invalid_argument& error) {  // a launcher variable out of range
    throw ConfigError("environment", "", error.what());
  }
  Store store(options.db.empty() || !main_rank ? ":memory:" : options.db);
  SweepOptions sweep_options;
  sweep_options.force = options.force;
  sweep_options.log = &std::cout;
  sweep_options.run_root = options.run_root;
  std::cout << "mixlab train: " << point.label << " (" << point.id << "), checkpoints in " << options.run_root << "/"
            << point.id << "\n";
  const SweepSummary summary = run_sweep(spec, store, device, sweep_options);

  // The last evaluation of each task and metric.
  Statement rows(store.handle(),
                 "SELECT task, metric, seq_len, value, step FROM evaluations e WHERE point_id = ? AND bucket = -1 "
                 "AND step = (SELECT MAX(step) FROM evaluations WHERE point_id = e.point_id) ORDER BY task, metric");
  rows.bind(1, point.id);
  while (rows.step())
    std::cout << "  step " << rows.integer(4) << "  " << std::left << std::setw(10) << rows.text(0) << std::setw(14)
              << rows.text(1) << " (seq_len " << rows.integer(2) << ") = " << rows.real(3, 0.0) << "\n";
  if (!options.curves_csv.empty() && main_rank)
    std::cout << "  curves: " << write_curves_csv(store, {point.id}, options.curves_csv) << " rows in "
              << options.curves_csv << "\n";
  return summary.failed > 0 ? 1 : 0;
}

}  // namespace

MIXLAB_REGISTER_COMMAND(train, "train and evaluate one model (a one-point sweep with a train section)",
                        [](CLI::App& app) -> Action {
                          auto options = std::make_shared<TrainOptions>();
                          app.add_option("--preset", options->preset, "model preset (experiments/presets/NAME.json)");
                          app.add_option("--config", options->config_file, "JSON file with model and train (and measure) sections");
                          app.add_option("--init-from", options->init_from,
                                         "start from the weights of a model file or folder (mixlab or HF names; "
                                         "without --preset/--config its config.json gives the model)");
                          app.add_option("--set", options->sets,
                                         "override a field: model.d_model=64, train.steps=100 (base. accepted)")
                              ->take_all();
                          app.add_option("--db", options->db, "results database to write into (default: in memory)");
                          app.add_option("--run-root", options->run_root, "folder of the per-point checkpoint folders");
                          app.add_option("--device", options->device, "auto, cpu or cuda");
                          app.add_option("--name", options->name, "sweep name recorded in the database");
                          app.add_flag("--force", options->force, "train again even if the point is done in --db");
                          app.add_option("--curves-csv", options->curves_csv,
                                         "also write the loss curve and evaluations as CSV (e.g. beside --db)");
                          return [options] { return run_train(*options); };
                        });

}  // namespace mixlab::cli
