#include "harness/sweep.h"

#include "harness/model_file.h"

#include "harness/config.h"
#include "harness/device.h"
#include "harness/interrupt.h"
#include "harness/measure.h"
#include "harness/model.h"
#include "harness/point_claim.h"
#include "harness/progress.h"
#include "harness/train.h"
#include "core/compat.h"

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

namespace mixlab {

namespace fs = std::filesystem;

namespace {

// Fault injection for the resume tests (tests/test_sweep.cpp): MIXLAB_FAULT_INJECTION="MOMENT:K"
// kills this process with SIGKILL at the K-th occurrence (1-based) of MOMENT, one of
// point_started, measuring (as a measurement starts), length_stored (after it is stored), measured,
// before_commit, point_done.
void maybe_die(const char* moment) {
  static const char* spec = std::getenv("MIXLAB_FAULT_INJECTION");
  if (!spec) return;
  static std::map<std::string, int> seen;
  const std::string text = spec;
  const auto colon = text.find(':');
  if (text.substr(0, colon) != moment) return;
  const int wanted = colon == std::string::npos ? 1 : std::atoi(text.c_str() + colon + 1);
  if (++seen[moment] == wanted) std::raise(SIGKILL);
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

// "done in 12.3 s (4 ok, 1 oom)": the point's time and its measurements by status.
std::string done_line(const std::vector<Measurement>& rows, std::chrono::steady_clock::duration elapsed) {
  std::map<std::string, int> statuses;
  for (const auto& m : rows) statuses[m.status] += 1;
  std::string counts;
  for (const auto& [name, count] : statuses) counts += (counts.empty() ? "" : ", ") + std::to_string(count) + " " + name;
  std::ostringstream line;
  line << "done in " << std::fixed << std::setprecision(1) << std::chrono::duration<double>(elapsed).count() << " s"
       << (counts.empty() ? "" : " (" + counts + ")");
  return line.str();
}

// SIGINT/SIGTERM end the point in flight cleanly while a sweep runs (harness/interrupt.h).
struct InterruptScope {
  InterruptScope() { install_interrupt_handlers(); }
  ~InterruptScope() { remove_interrupt_handlers(); }
};

}  // namespace

SweepRecord make_sweep_record(const SweepSpec& spec, const std::string& device_kind, const std::string& dtype) {
  SweepRecord r;
  r.name = spec.name;
  r.description = spec.description;
  r.spec_path = spec.file;
  r.spec_json = spec.raw.dump();
  r.git_commit = git_commit();
  r.host = host_name();
  r.device = device_kind;
  r.device_name = device_name(Device{device_kind, dtype});
  r.torch_version = compat::torch_version_string();
  r.dtype = dtype;
  return r;
}

std::optional<std::pair<int64_t, int64_t>> shard_from_environment() {
  const char* id = std::getenv("SLURM_ARRAY_TASK_ID");
  const char* count = std::getenv("SLURM_ARRAY_TASK_COUNT");
  if (!id || !count) return std::nullopt;
  const char* minimum = std::getenv("SLURM_ARRAY_TASK_MIN");
  const int64_t i = std::atoll(id) - (minimum ? std::atoll(minimum) : 0);
  const int64_t n = std::atoll(count);
  if (n < 1 || i < 0 || i >= n)
    throw ConfigError("SLURM_ARRAY_TASK_ID", "", "task " + std::string(id) + " of " + count +
                                                     " does not name a shard; pass --shard i/n");
  return std::make_pair(i, n);
}

std::string default_database_path(const std::string& sweep_name) { return "results/" + sweep_name + ".db"; }

SweepSummary run_sweep(const SweepSpec& spec, Store& store, const std::string& device_kind,
                       const SweepOptions& options) {
  std::vector<SweepPoint> points =
      options.shard ? shard_points(spec.points, options.shard->first, options.shard->second) : spec.points;
  const std::string default_dtype =
      points.empty() ? resolve_dtype("auto", device_kind) : points.front().config["measure"]["dtype"].get<std::string>();
  SweepRecord record = make_sweep_record(spec, device_kind, default_dtype);
  if (options.shard) record.shard = std::to_string(options.shard->first) + "/" + std::to_string(options.shard->second);

  SweepSummary summary;
  summary.total = points.size();
  summary.sweep_id = store.begin_sweep(record);
  // Every point of this sweep (or shard) is a member from the start, `pending` until it runs.
  std::vector<PointRecord> members;
  for (const auto& point : points) members.push_back({point.id, spec.name, point.label, point.mixers, point.config.dump()});
  store.register_sweep_points(spec.name, members);
  const InterruptScope interrupt_scope;
  Progress progress(points.size(), options.progress);
  auto log = [&](const std::string& line) {
    progress.clear();
    if (options.log) *options.log << line << std::endl;
  };

  for (size_t k = 0; k < points.size(); ++k) {
    const SweepPoint& point = points[k];
    const std::string where = "[" + std::to_string(k + 1) + "/" + std::to_string(points.size()) + "] " + point.label +
                              " (" + point.id + ")";
    if (interrupt_requested()) {
      summary.interrupted_at = k + 1;
      break;
    }
    PointRecord row = members[k];
    const PointClaim claim = store.claim_point(row, summary.sweep_id, options.force, options.max_attempts);
    if (claim.outcome == PointClaim::Outcome::done) {
      ++summary.skipped;
      log(where + ": already done, skipped");
      continue;
    }
    if (claim.outcome == PointClaim::Outcome::busy) {
      ++summary.busy;
      log(where + ": " + claim.detail + ", left to it");
      continue;
    }
    if (claim.outcome == PointClaim::Outcome::killed) {
      ++summary.killed;
      log(where + ": KILLED: " + claim.detail);
      continue;
    }
    if (!claim.detail.empty()) log(where + ": " + claim.detail);
    const auto status = claim.previous_status;
    const ClaimHeartbeat heartbeat(store.path(), point.id);
    maybe_die("point_started");
    progress.begin_point(k, point.label);
    const auto started = std::chrono::steady_clock::now();
    try {
      const MeasureSettings settings = MeasureSettings::from_json(point.config["measure"]);
      SweepRecord provenance = record;
      provenance.dtype = settings.dtype;
      const ModelConfig model_config = parse_model_config(point.config["model"], spec.file, "model");
      torch::manual_seed(static_cast<uint64_t>(settings.seed));
      LanguageModel model(model_config);
      load_initial_weights(*model, point.config["model"]);  // --init-from
      row.parameters = model->parameter_count();
      row.embedding_parameters = model->embedding_parameter_count();
      const bool has_train = point.config.contains("train");
      // A point cut midway (interrupted, killed, out of time) resumes after the lengths it stored;
      // a training point whose lengths are all stored resumes at training.
      const bool resumed = !options.force && (status == std::string("running") || status == std::string("pending"));
      const StoredMeasurements stored = resumed ? store.stored_measurements(point.id) : StoredMeasurements{};
      if (!resumed) store.clear_measurements(point.id);
      if (!stored.done.empty()) log(where + ": resumes after " + std::to_string(stored.done.size()) + " stored measurements");
      const std::vector<Measurement> rows = measure_model(
          model, settings,
          [&](int64_t n, const std::string& phase, size_t i, size_t count) {
            store.set_claim_stage(point.id, phase + " N=" + std::to_string(n));
            maybe_die("measuring");
            progress.measurement(n, phase, i, count);
          },
          stored, [&](const Measurement& m) {
            store.store_measurement(point.id, provenance, m);
            maybe_die("length_stored");
          });
      maybe_die("measured");
      if (!has_train || !rows.empty() || stored.done.empty())
        store.record_measurements(row, summary.sweep_id, provenance, rows, /*finished=*/!has_train,
                                  [] { maybe_die("before_commit"); }, /*keep_stored=*/resumed);
      if (has_train) {
        const std::string run_dir = (fs::path(options.run_root.empty() ? "results/runs" : options.run_root) / point.id).string();
        if (options.force) fs::remove_all(run_dir);  // --force trains again: no checkpoint to resume from
        fs::create_directories(run_dir);
        progress.clear();
        auto records = store.training_records(point.id);
        store.set_claim_stage(point.id, "train");
        run_training(point.config, run_dir, device_kind, *records);
        store.finish_point(point.id);
      }
      maybe_die("point_done");
      ++summary.done;
      log(where + ": " + done_line(rows, std::chrono::steady_clock::now() - started));
    } catch (const Interrupted&) {
      // Not a verdict on the point: it is `pending` again and a rerun resumes after the lengths it stored.
      store.release_point(point.id);
      summary.interrupted_at = k + 1;
      progress.clear();
      break;
    } catch (const std::exception& error) {
      ++summary.failed;
      store.fail_point(point.id, first_line(error.what()));
      log(where + ": FAILED: " + first_line(error.what()));
    }
  }
  progress.clear();
  if (!summary.interrupted_at) store.finish_sweep(summary.sweep_id);
  return summary;
}

}  // namespace mixlab
