#pragma once
// Data-parallel training over LibTorch's c10d (the engine behind torch's DistributedDataParallel):
// W processes ("ranks") train one model; each computes the gradient of its own shard of the
// global batch and the gradients are averaged across ranks before every optimiser step
// (docs/distributed.md).
//
//   launch       RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (torchrun) or
//                SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID (srun); none of them, or a world of
//                one: a single process, exactly as without this file
//   rendezvous   a c10d TCPStore at MASTER_ADDR:MASTER_PORT (rank 0 hosts it; under torchrun the
//                agent's store is joined instead)
//   collectives  ProcessGroupNCCL for CUDA, ProcessGroupGloo for the CPU
//   semantics    train.batch_size is the global batch B: rank r takes rows [r·B/W, (r+1)·B/W)
//                of every micro-batch, so step s sees the same B sequences as one process and
//                the budgets (steps, tokens, FLOPs) count global tokens.  The averaged gradient
//                g = (1/W) Σ_r ∇L_r equals the single-process gradient ∇L whenever L is the mean
//                of per-row losses with equal weights (every corpus window, every MQAR example).
//   reduction    gradients all-reduced in buckets while backward still runs, as the reducer of
//                Li et al., "PyTorch Distributed: Experiences on Accelerating Data Parallel
//                Training", VLDB 2020, §3.2.3 (bucketing, overlap with autograd hooks) does.
//   failure      every collective has a timeout (MIXLAB_DIST_TIMEOUT_S, default 600 s); a lost
//                peer ends each survivor with an error that names the ranks that did not answer.

#include "data/synthetic.h"
#include "harness/training_records.h"

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace mixlab::distributed {

// Where this process sits in the job, read from the launcher's variables.
struct Launch {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string launcher = "none";  // none | torchrun | slurm
  bool agent_store = false;       // torchrun's agent hosts the store: every rank joins as a client
  std::string attempt = "0";      // torchrun's restart count (a fresh store prefix per attempt)
};

// Throws std::invalid_argument naming the variable and what is valid.
// Whether this build can train data-parallel on the CPU (Gloo's headers were found at build time;
// a PyTorch wheel's LibTorch ships none).  CUDA uses NCCL.
bool cpu_backend_available();

Launch launch_from_environment();

class Collectives;  // the process group (harness/distributed.cpp)

// The job's process group: created on first use, once per process, and kept until exit.
// world_size() == 1 without launcher variables; then every collective is a no-op.
class Job {
 public:
  // device_kind: "cpu" (Gloo) or "cuda" (NCCL; the current CUDA device becomes LOCAL_RANK).
  static Job& get(const std::string& device_kind);
  // Makes this process a world of one whatever the launcher variables say (`mixlab sweep`: its
  // processes share points as independent workers).  Must come before the first get().
  static void run_alone();

  int rank() const { return launch_.rank; }
  int world_size() const { return launch_.world_size; }
  bool is_main() const { return launch_.rank == 0; }  // rank 0 alone writes results and checkpoints
  const Launch& launch() const { return launch_; }

  // Every parameter and buffer of `module` takes rank 0's values.
  void broadcast_from_main(torch::nn::Module& module);
  // The mean over ranks of a scalar.
  double mean_over_ranks(double value, torch::Device device);
  // Rank 0's value of an integer, on every rank.
  int64_t value_of_main(int64_t value, torch::Device device);
  // Rows [r·B/W, (r+1)·B/W) of a global batch of B rows; B must be divisible by W.
  data::Batch shard(const data::Batch& global) const;

  Collectives& collectives() { return *collectives_; }

 private:
  Job(Launch launch, const std::string& device_kind);
  Launch launch_;
  std::shared_ptr<Collectives> collectives_;
};

// Averages the gradients of `parameters` across the job's ranks, bucket by bucket, while
// backward still runs: a post-hook on each parameter's gradient accumulator marks it ready, a
// full bucket is flattened, scaled by 1/W and all-reduced (sum) asynchronously; buckets launch in
// one fixed order on every rank.  Buckets hold parameters in reverse registration order (the
// order backward produces them), at most bucket_bytes each.
class GradientReducer {
 public:
  GradientReducer(Job& job, std::vector<torch::Tensor> parameters, int64_t bucket_bytes = int64_t{25} << 20);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Before each backward pass: whether it is the last of the optimiser step (earlier micro-
  // batches only accumulate locally, as DDP's no_sync does).
  void prepare(bool last_micro_batch);
  // After the last backward pass: launches the buckets still waiting (parameters that received
  // no gradient count as zeros) and writes the averages into .grad.  On CUDA (NCCL) the wait is
  // stream-ordered: the kernels that follow (clipping, the optimiser) queue behind the all-reduce
  // and the host never blocks; a collective that hangs ends the job through NCCL's watchdog after
  // MIXLAB_DIST_TIMEOUT_S.  On the CPU (Gloo) it blocks, naming lost ranks on failure.
  void finish();

  struct State;  // shared with the autograd hooks

 private:
  std::shared_ptr<State> state_;
};

// Where ranks other than 0 send their training rows: nowhere (rank 0 writes the results).
class DiscardedRecords : public TrainingRecords {
 public:
  void log_step(int64_t, int64_t, double, double, double, double, double) override {}
  void log_evaluation(int64_t, const std::string&, const std::string&, double, std::optional<int64_t>,
                      std::optional<int64_t>, const std::string&) override {}
  void discard_after(int64_t) override {}
};

}  // namespace mixlab::distributed
