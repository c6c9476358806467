// `mixlab sweep SPEC [--db results.db] [--device auto|cpu|cuda] [--shard i/n] [--dry-run] [--force]`:
// expand and validate a sweep spec, then measure (and train) every point not yet done into a
// SQLite results database.  docs/sweeps.md describes the spec and a Slurm array example.

#include "cli/command.h"
#include "cli/set_option.h"
#include "harness/config.h"
#include "harness/curves_csv.h"
#include "harness/device.h"
#include "harness/distributed.h"
#include "harness/interrupt.h"
#include "harness/progress.h"
#include "harness/spec.h"
#include "harness/sweep.h"
#include "harness/sweep_workers.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <iostream>

namespace mixlab::cli {
namespace {

struct SweepCommandOptions {
  std::string spec;
  std::string db;
  std::string device = "auto";
  std::string shard;
  bool dry_run = false;
  bool force = false;
  std::string run_root;                // training run folders (default <db dir>/<spec name>.runs)
  int64_t max_attempts = kDefaultMaxAttempts;
  std::vector<std::string> overrides;  // --set base.measure.repeats=5
  std::string curves_csv;
  std::string gpus;                    // --gpus 0,1: one worker process per GPU (harness/sweep_workers.h)
  int workers_per_gpu = 1;
};

// The parent of `--gpus` workers: each worker is this command without --gpus, --force and
// --curves-csv, into the same database; afterwards the parent counts the points' statuses.
int run_sweep_on_workers(const SweepCommandOptions& o, const std::string& device, const std::string& db,
                         const std::string& run_root, const std::vector<SweepPoint>& selected) {
  if (o.force)
    throw ConfigError("--force", "", "cannot be combined with --gpus (a forced point would run again in every worker); "
                                     "run the sweep with --force alone, or remove the points' rows first");
  SweepWorkers plan;
  plan.gpus = parse_gpu_list(o.gpus, "--gpus");
  plan.workers_per_gpu = o.workers_per_gpu;
  plan.cuda = device == "cuda";
  plan.program = std::filesystem::read_symlink("/proc/self/exe").string();
  plan.args = {"sweep", o.spec, "--db", db, "--device", device, "--run-root", run_root, "--max-attempts",
               std::to_string(o.max_attempts)};
  if (!o.shard.empty()) plan.args.insert(plan.args.end(), {"--shard", o.shard});
  for (const auto& assignment : o.overrides) plan.args.insert(plan.args.end(), {"--set", assignment});
  std::cout << "sweep: " << selected.size() << " points over " << plan.gpus.size() * plan.workers_per_gpu
            << " workers (" << (plan.cuda ? "GPUs " + o.gpus : std::string("CPU; the GPU list only sets the count"))
            << ") -> " << db << std::endl;
  const int failed_workers = run_sweep_workers(plan);
  if (interrupt_requested()) {
    std::cerr << "mixlab: interrupted; the workers released their points; rerun the same command to resume\n";
    return 128 + interrupt_signal();
  }

  Store store(db);
  std::map<std::string, size_t> statuses;
  for (const auto& point : selected) statuses[store.point_status(point.id).value_or("missing")] += 1;
  std::cout << "sweep: ";
  for (const auto& [status, count] : statuses) std::cout << count << " " << status << "  ";
  std::cout << "(mixlab show --db " << db << ")\n";
  if (!o.curves_csv.empty()) {
    std::vector<std::string> ids;
    for (const auto& point : selected) ids.push_back(point.id);
    std::cout << "curves: " << write_curves_csv(store, ids, o.curves_csv) << " rows in " << o.curves_csv << "\n";
  }
  return failed_workers || statuses.size() != 1 || !statuses.count("done") ? 1 : 0;
}

std::string seq_summary(const nlohmann::json& measure) {
  const auto& lengths = measure["seq_lens"];
  if (lengths.empty()) return "-";
  std::string text = std::to_string(lengths.front().get<int64_t>());
  if (lengths.size() > 1) text += ".." + std::to_string(lengths.back().get<int64_t>()) + " (" + std::to_string(lengths.size()) + ")";
  return text;
}

int run_sweep_command(const SweepCommandOptions& o) {
  std::cout << std::unitbuf;  // in a log, these lines keep their place among the training lines (stderr)
  const std::string device = resolve_device_kind(o.device, "--device");
  // Under torchrun or a multi-task srun the processes share the points as independent workers
  // (data-parallel training of one model is `mixlab train`; docs/distributed.md).
  distributed::Job::run_alone();
  std::optional<std::pair<int64_t, int64_t>> shard;
  if (!o.shard.empty()) shard = parse_shard(o.shard, "--shard");
  else shard = shard_from_environment();
  // Everything is validated before anything is written.
  nlohmann::json raw = read_json_file(o.spec);
  // The same --set paths as bench and train (model.*, measure.*, train.* go to the spec's base,
  // "base." accepted in front), plus the spec's own fields.
  for (const auto& assignment : o.overrides) {
    const std::string path = without_base_prefix(assignment);
    const std::string section = first_path_segment(path);
    const bool base_section = section == "model" || section == "measure" || section == "train";
    try {
      if (base_section) apply_dotted_set(raw["base"], path);
      else if (section == "name" || section == "description" || section == "grid" || section == "zip" || section == "points")
        apply_dotted_set(raw, assignment);
      else
        throw ConfigError(o.spec, "", "'" + section + "' is not a spec field; valid: model.*, measure.*, train.* "
                                      "(base. accepted), name, description, grid.*, zip.*, points.*");
    } catch (const ConfigError& error) {
      // The key, not the whole assignment: the value may be huge or not printable.
      throw ConfigError(o.spec, "--set " + (error.path.empty() ? assignment : error.path), error.detail);
    }
  }
  const SweepSpec spec = expand_spec(raw, o.spec, device);
  const auto selected = shard ? shard_points(spec.points, shard->first, shard->second) : spec.points;

  if (o.dry_run) {
    std::cout << "# " << spec.name << (spec.description.empty() ? "" : ": " + spec.description) << "\n";
    for (size_t k = 0; k < selected.size(); ++k) {
      const auto& p = selected[k];
      const auto& m = p.config["measure"];
      std::cout << p.id << "  " << p.label << "  [" << p.mixers << "]  d=" << p.config["model"].value("d_model", 0)
                << " L=" << p.config["model"].value("n_layers", 0) << "  N=" << seq_summary(m)
                << "  B=" << m["batch"] << "  " << m["dtype"].get<std::string>() << "  phases="
                << m["phases"].dump() << (p.config.contains("train") ? "  +train" : "") << "  <- " << p.origin
                << "\n";
    }
    std::cout << selected.size() << " point" << (selected.size() == 1 ? "" : "s");
    if (shard) std::cout << " in shard " << shard->first << "/" << shard->second << " of " << spec.points.size();
    std::cout << " (device " << device << ")\n";
    return 0;
  }

  const std::string db = o.db.empty() ? default_database_path(spec.name) : o.db;
  const auto parent = std::filesystem::path(db).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  const std::string run_root = !o.run_root.empty() ? o.run_root
                                                  : (parent.empty() ? std::filesystem::path(".") : parent).string() + "/" +
                                                        spec.name + ".runs";
  if (!o.gpus.empty()) return run_sweep_on_workers(o, device, db, run_root, selected);
  Store store(db);
  SweepOptions options;
  options.shard = shard;
  options.force = o.force;
  options.progress = Progress::stderr_is_terminal();
  options.log = &std::cout;
  options.max_attempts = o.max_attempts;
  options.run_root = run_root;
  const bool trains = std::any_of(selected.begin(), selected.end(), [](const SweepPoint& p) { return p.config.contains("train"); });
  std::cout << "sweep " << spec.name << ": " << selected.size() << " points"
            << (shard ? " (shard " + std::to_string(shard->first) + "/" + std::to_string(shard->second) + ")" : "")
            << " on " << device << " -> " << db << (trains ? ", training runs in " + options.run_root : "")
            << std::endl;
  const SweepSummary summary = run_sweep(spec, store, device, options);
  if (summary.interrupted_at) {
    std::cerr << "mixlab: interrupted at point " << summary.interrupted_at << " of " << summary.total
              << "; rerun the same command to resume\n";
    return 128 + interrupt_signal();
  }
  std::cout << "sweep " << spec.name << ": " << summary.done << " done, " << summary.skipped << " already done, "
            << summary.failed << " failed"
            << (summary.killed ? ", " + std::to_string(summary.killed) + " killed" : "")
            << (summary.busy ? ", " + std::to_string(summary.busy) + " running elsewhere" : "")
            << "  (mixlab show --db " << db << ")\n";
  if (!o.curves_csv.empty()) {
    std::vector<std::string> ids;
    for (const auto& point : selected) ids.push_back(point.id);
    std::cout << "curves: " << write_curves_csv(store, ids, o.curves_csv) << " rows in " << o.curves_csv << "\n";
  }
  return summary.failed || summary.killed ? 1 : 0;
}

}  // namespace

MIXLAB_REGISTER_COMMAND(sweep, "run a declarative sweep spec into a SQLite results database",
                        [](CLI::App& app) -> Action {
                          auto o = std::make_shared<SweepCommandOptions>();
                          app.add_option("spec", o->spec, "sweep spec (JSON, comments allowed)")->required();
                          app.add_option("--db", o->db, "results database (default results/NAME.db)");
                          app.add_option("--device", o->device, "auto, cpu or cuda")->capture_default_str();
                          app.add_option("--shard", o->shard,
                                         "run the deterministic slice i/n (default from SLURM_ARRAY_TASK_ID/COUNT)");
                          app.add_flag("--dry-run", o->dry_run, "print the resolved points and their count, run nothing");
                          app.add_flag("--force", o->force, "re-run points already done or killed (training starts afresh)");
                          app.add_option("--run-root", o->run_root,
                                         "folder of the training points' run folders (checkpoint, records.jsonl); "
                                         "default <db dir>/<spec name>.runs");
                          app.add_option("--max-attempts", o->max_attempts,
                                         "record a point `killed` after its process died this many times")
                              ->check(CLI::Range(int64_t{1}, int64_t{1000}))
                              ->capture_default_str();
                          app.add_option("--curves-csv", o->curves_csv,
                                         "also write the training curves and evaluations as CSV (e.g. results/NAME.curves.csv)");
                          app.add_option("--gpus", o->gpus,
                                         "spread the points over worker processes, one per listed GPU (e.g. 0,1; "
                                         "with --device cpu only their number counts); docs/distributed.md");
                          app.add_option("--workers-per-gpu", o->workers_per_gpu,
                                         "worker processes per listed GPU (tiny models can share one)")
                              ->check(CLI::Range(1, 64))
                              ->capture_default_str();
                          app.add_option("--set", o->overrides,
                                         "override a spec field before validation, e.g. measure.repeats=5 (= base.measure.repeats=5) "
                                         "(repeatable; the values become part of each point's config and id)");
                          return [o] { return run_sweep_command(*o); };
                        });

}  // namespace mixlab::cli
