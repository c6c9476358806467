#pragma once
// `mixlab sweep SPEC --gpus 0,1 [--workers-per-gpu K]`: one sweep spread over the GPUs of a node
// (docs/distributed.md).  The command starts G·K worker processes, each the same `mixlab sweep`
// command without --gpus, into the same database; worker w sees only GPU gpus[w mod G]
// (CUDA_VISIBLE_DEVICES) when the sweep runs on CUDA, and the device list is ignored on the CPU.
// Points are handed out dynamically by the database's point claims (harness/point_claim.h): every
// worker walks the points in order, claims the next one nobody holds, and leaves the others to
// their holders, so each point runs exactly once however long the points take.

#include <string>
#include <vector>

namespace mixlab {

struct SweepWorkers {
  std::vector<int> gpus;         // CUDA device ordinals
  int workers_per_gpu = 1;
  bool cuda = false;             // set CUDA_VISIBLE_DEVICES per worker
  std::string program;           // this mixlab binary
  std::vector<std::string> args; // the worker's arguments after the program name
};

// "0,1,3" -> {0, 1, 3}; throws ConfigError(origin, ...) on an empty, negative or repeated ordinal.
std::vector<int> parse_gpu_list(const std::string& text, const std::string& origin);

// Starts every worker, waits for all of them and returns how many did not exit with status 0.
// A worker's output goes to this process's stdout and stderr.
int run_sweep_workers(const SweepWorkers& plan);

}  // namespace mixlab
