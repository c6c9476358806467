#pragma once
// Running a sweep: for each resolved point of a spec (or of a shard of it) that is not done yet,
// build the model, measure it against sequence length, run the training phase where the point
// asks for one, and write everything to the results database — one transaction per point, so
// re-running resumes where a killed run stopped.

#include "harness/spec.h"
#include "harness/store.h"

#include <iosfwd>
#include <optional>
#include <string>
#include <utility>

namespace mixlab {

struct SweepOptions {
  std::optional<std::pair<int64_t, int64_t>> shard;  // (i, n)
  bool force = false;           // re-run points already done
  bool progress = false;        // draw a progress line on stderr
  std::ostream* log = nullptr;  // one line per point (nullptr: silent)
  std::string run_root;         // folder for the training phase's per-point run folders
  // A point whose process died this many times (OOM killer, signal) is recorded `killed`.
  int64_t max_attempts = kDefaultMaxAttempts;
};

struct SweepSummary {
  int64_t sweep_id = 0;
  size_t total = 0, skipped = 0, done = 0, failed = 0;
  size_t busy = 0;          // running in another live process, left to it
  size_t killed = 0;        // recorded (or already) `killed`
  size_t interrupted_at = 0;  // 1-based point at which SIGINT/SIGTERM stopped the sweep; 0: not interrupted
};

// Provenance of this process for `device` (git commit, host, device name, LibTorch version).
SweepRecord make_sweep_record(const SweepSpec& spec, const std::string& device_kind, const std::string& dtype);

SweepSummary run_sweep(const SweepSpec& spec, Store& store, const std::string& device_kind,
                       const SweepOptions& options);

// --shard default from a Slurm array job: SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of
// SLURM_ARRAY_TASK_COUNT; nullopt outside one.
std::optional<std::pair<int64_t, int64_t>> shard_from_environment();

// `results/NAME.db` next to the current directory.
std::string default_database_path(const std::string& sweep_name);

}  // namespace mixlab
