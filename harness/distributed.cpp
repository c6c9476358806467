// Data-parallel training over c10d: launch variables, rendezvous, process group, gradient
// buckets (harness/distributed.h; docs/distributed.md).
#define MIXLAB_C10D_COMPAT 1  // core/compat.h: the c10d process-group type of this LibTorch
#include "harness/distributed.h"

#include "core/compat.h"

#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

// Gloo: Debian's LibTorch 1.13 links libgloo; its headers come with libgloo-dev.
#if __has_include(<gloo/config.h>)
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#define MIXLAB_HAS_GLOO 1
#else
#define MIXLAB_HAS_GLOO 0
#endif

// NCCL: CMake defines MIXLAB_WITH_NCCL when this LibTorch has ProcessGroupNCCL and nccl.h exists.
#ifdef MIXLAB_WITH_NCCL
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#ifdef MIXLAB_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace mixlab::distributed {
namespace {

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

const char* variable(const char* name) {
  const char* value = std::getenv(name);
  return value && *value ? value : nullptr;
}

int integer_variable(const char* name, int lo, int hi) {
  const char* text = variable(name);
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (*end != '\0' || value < lo || value > hi)
    throw std::invalid_argument(std::string("environment variable ") + name + "='" + text +
                                "' is not an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return static_cast<int>(value);
}

std::chrono::milliseconds collective_timeout() {
  const int seconds = variable("MIXLAB_DIST_TIMEOUT_S") ? integer_variable("MIXLAB_DIST_TIMEOUT_S", 1, 86400 * 7) : 600;
  return std::chrono::milliseconds(int64_t{seconds} * 1000);
}

}  // namespace

bool cpu_backend_available() { return MIXLAB_HAS_GLOO != 0; }

Launch launch_from_environment() {
  Launch launch;
  if (variable("WORLD_SIZE")) {  // torchrun (or any launcher that sets the torch.distributed variables)
    launch.launcher = "torchrun";
    launch.world_size = integer_variable("WORLD_SIZE", 1, 1 << 20);
    if (!variable("RANK")) throw std::invalid_argument("WORLD_SIZE is set but RANK is not (torchrun sets both)");
    launch.rank = integer_variable("RANK", 0, launch.world_size - 1);
    launch.local_rank = variable("LOCAL_RANK") ? integer_variable("LOCAL_RANK", 0, 1 << 16) : 0;
    launch.agent_store = variable("TORCHELASTIC_USE_AGENT_STORE") &&
                         std::string(variable("TORCHELASTIC_USE_AGENT_STORE")) == "True";
    if (variable("TORCHELASTIC_RESTART_COUNT")) launch.attempt = variable("TORCHELASTIC_RESTART_COUNT");
  } else if (variable("SLURM_NTASKS") && variable("SLURM_PROCID")) {  // srun
    launch.launcher = "slurm";
    launch.world_size = integer_variable("SLURM_NTASKS", 1, 1 << 20);
    launch.rank = integer_variable("SLURM_PROCID", 0, launch.world_size - 1);
    launch.local_rank = variable("SLURM_LOCALID") ? integer_variable("SLURM_LOCALID", 0, 1 << 16) : 0;
    if (variable("SLURM_JOB_ID")) launch.attempt = std::string("slurm-") + variable("SLURM_JOB_ID");
    if (launch.world_size > 1 && !variable("MASTER_ADDR") && variable("SLURM_NNODES") &&
        std::string(variable("SLURM_NNODES")) != "1")
      throw std::invalid_argument("a Slurm job over several nodes needs MASTER_ADDR (the first node's host name: "
                                  "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n1))");
  }
  if (variable("MASTER_ADDR")) launch.master_addr = variable("MASTER_ADDR");
  if (variable("MASTER_PORT")) launch.master_port = integer_variable("MASTER_PORT", 1, 65535);
  if (launch.world_size == 1) launch.launcher = "none";
  return launch;
}

// ============================================================================ the process group
// The c10d group and its store; every collective of the job goes through here so that a
// failure is reported the same way.
class Collectives {
 public:
  Collectives(const Launch& launch, const std::string& device_kind)
      : launch_(launch), timeout_(collective_timeout()), stream_ordered_(device_kind == "cuda") {
    // Before the rendezvous: a rank without the backend must not leave its peers waiting at the
    // store (rank 0 hosts it), so every rank fails here, at once, with the same message.
    if (device_kind != "cuda" && !cpu_backend_available())
      throw std::runtime_error(where() + ": data-parallel training on the CPU needs Gloo, and this mixlab was "
                               "built without its headers (Debian: apt-get install libgloo-dev, then rebuild; "
                               "a PyTorch wheel's LibTorch ships no gloo/ headers)");
    c10d::TCPStoreOptions options;
    options.port = static_cast<uint16_t>(launch.master_port);
    options.isServer = launch.rank == 0 && !launch.agent_store;
    if (options.isServer) options.numWorkers = static_cast<size_t>(launch.world_size);
    options.waitWorkers = false;  // Gloo's own rendezvous through the store waits for every rank
    options.timeout = timeout_;
    try {
      auto tcp = c10::make_intrusive<c10d::TCPStore>(launch.master_addr, options);
      store_ = c10::make_intrusive<c10d::PrefixStore>("mixlab/" + launch.attempt, tcp);
      group_ = make_group(device_kind);
    } catch (const std::exception& error) {
      throw std::runtime_error(where() + ": rendezvous at " + launch.master_addr + ":" +
                               std::to_string(launch.master_port) + " failed: " + first_line(error.what()));
    }
  }

  // Waits for `work`; on failure names the ranks that no longer answer and throws.
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what) {
    try {
      work->wait(timeout_);
    } catch (const std::exception& error) {
      throw failure(what, error);
    }
  }

  // Waits for `work` the cheapest way that keeps the result correct for what follows: on NCCL the
  // current CUDA stream waits for the collective's stream and the host goes on (a wait with a
  // timeout would block the host until the collective completes, leaving the GPU idle while the
  // next kernels are launched); on Gloo, `wait` above.
  void wait_in_stream_order(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what) {
    if (!stream_ordered_) return wait(work, what);
    try {
      work->wait();
    } catch (const std::exception& error) {
      throw failure(what, error);
    }
  }

  // Launches a sum all-reduce of `tensor` in place.
  c10::intrusive_ptr<c10d::Work> all_reduce_sum(torch::Tensor& tensor, const std::string& what) {
    std::vector<torch::Tensor> tensors{tensor};
    return launch_collective([&] { return group_->allreduce(tensors, c10d::AllreduceOptions()); }, what);
  }

  void broadcast_from_main(torch::Tensor& tensor, const std::string& what) {
    std::vector<torch::Tensor> tensors{tensor};
    c10d::BroadcastOptions options;
    options.rootRank = 0;
    wait(launch_collective([&] { return group_->broadcast(tensors, options); }, what), what);
  }

 private:
  // The error that ends the job after a failed collective: which rank, what failed, which ranks
  // no longer answer.
  std::runtime_error failure(const std::string& what, const std::exception& error) {
    return std::runtime_error(where() + ": " + what + " failed (" + first_line(error.what()) + "); " + lost_ranks() +
                              ". The job ends; rank 0's last checkpoint is where a rerun resumes");
  }

  std::string where() const {
    return "rank " + std::to_string(launch_.rank) + " of " + std::to_string(launch_.world_size);
  }

  template <typename Launcher>
  c10::intrusive_ptr<c10d::Work> launch_collective(Launcher&& launcher, const std::string& what) {
    try {
      return launcher();
    } catch (const std::exception& error) {  // Gloo may fail at the call when a peer is gone
      throw failure(what, error);
    }
  }

  c10::intrusive_ptr<compat::C10dGroup> make_group(const std::string& device_kind) {
    const int rank = launch_.rank, size = launch_.world_size;
    if (device_kind == "cuda") {
#ifdef MIXLAB_WITH_NCCL
      const int visible = static_cast<int>(c10::cuda::device_count());
      if (launch_.local_rank >= visible)  // NCCL would hang or fail obscurely with two ranks on one GPU
        throw std::runtime_error(where() + ": LOCAL_RANK " + std::to_string(launch_.local_rank) + " needs GPU " +
                                 std::to_string(launch_.local_rank) + ", but " + std::to_string(visible) +
                                 " CUDA device(s) are visible (CUDA_VISIBLE_DEVICES); start at most one rank per GPU, "
                                 "or train on the CPU with --device cpu (Gloo)");
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(launch_.local_rank));
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = timeout_;
      return c10::make_intrusive<c10d::ProcessGroupNCCL>(store_, rank, size, options);
#else
      throw std::runtime_error("data-parallel training on CUDA needs NCCL, and this mixlab was built without it "
                               "(CMake found no ProcessGroupNCCL.hpp or nccl.h; see docs/distributed.md)");
#endif
    }
#if MIXLAB_HAS_GLOO
    auto options = c10d::ProcessGroupGloo::Options::create(timeout_);
    const bool loopback = launch_.master_addr == "127.0.0.1" || launch_.master_addr == "localhost";
    options->devices.push_back(variable("GLOO_SOCKET_IFNAME")
                                   ? c10d::ProcessGroupGloo::createDeviceForInterface(variable("GLOO_SOCKET_IFNAME"))
                               : loopback ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                          : c10d::ProcessGroupGloo::createDefaultDevice());
    return c10::make_intrusive<c10d::ProcessGroupGloo>(store_, rank, size, options);
#else
    throw std::logic_error("unreachable: the constructor checked cpu_backend_available()");
#endif
  }

  // After a failed collective every survivor checks in at the store and waits a moment; the
  // ranks that did not check in are the lost ones.  An unreachable store means rank 0 is gone.
  std::string lost_ranks() {
    try {
      store_->setTimeout(std::chrono::seconds(5));
      store_->set("alive-after-failure/" + std::to_string(launch_.rank), std::vector<uint8_t>{1});
      std::this_thread::sleep_for(std::chrono::seconds(2));
      std::string lost;
      for (int r = 0; r < launch_.world_size; ++r)
        if (r != launch_.rank && !store_->check({"alive-after-failure/" + std::to_string(r)}))
          lost += (lost.empty() ? "" : ", ") + std::to_string(r);
      return lost.empty() ? "every rank still answers (a timeout? MIXLAB_DIST_TIMEOUT_S sets it)"
                          : "rank(s) " + lost + " no longer answer";
    } catch (const std::exception&) {
      return launch_.agent_store ? "torchrun's rendezvous store no longer answers"
                                 : "rank 0 (which hosts the rendezvous store) no longer answers";
    }
  }

  Launch launch_;
  std::chrono::milliseconds timeout_;
  bool stream_ordered_;  // NCCL: collectives are ordered with the CUDA stream, not the host
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<compat::C10dGroup> group_;
};

// ============================================================================ the job
Job::Job(Launch launch, const std::string& device_kind) : launch_(std::move(launch)) {
  if (launch_.world_size > 1) collectives_ = std::make_shared<Collectives>(launch_, device_kind);
}

namespace {
Job* the_job = nullptr;  // never destroyed: the group's threads must not outlive LibTorch's statics
bool alone = false;
std::mutex job_mutex;
}  // namespace

void Job::run_alone() {
  std::lock_guard<std::mutex> lock(job_mutex);
  if (the_job && the_job->world_size() > 1) throw std::logic_error("Job::run_alone after the job started");
  alone = true;
}

Job& Job::get(const std::string& device_kind) {
  static std::string kind;
  Job*& job = the_job;
  std::lock_guard<std::mutex> lock(job_mutex);
  if (!job) {
    job = new Job(alone ? Launch{} : launch_from_environment(), device_kind);
    kind = device_kind;
  } else if (kind != device_kind && job->world_size() > 1) {
    throw std::runtime_error("a data-parallel job runs on one device kind; it started on " + kind + ", not " + device_kind);
  }
  return *job;
}

// Parameters and buffers flattened into one tensor, broadcast, copied back.
void Job::broadcast_from_main(torch::nn::Module& module) {
  if (world_size() == 1) return;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> tensors = module.parameters();
  for (const auto& buffer : module.buffers()) tensors.push_back(buffer);
  std::map<at::ScalarType, std::vector<torch::Tensor>> by_dtype;  // one flat tensor per dtype
  for (const auto& t : tensors)
    if (t.defined() && t.numel() > 0) by_dtype[t.scalar_type()].push_back(t);
  for (auto& [dtype, group] : by_dtype) {
    std::vector<torch::Tensor> flat_parts;
    for (const auto& t : group) flat_parts.push_back(t.reshape({-1}));
    torch::Tensor flat = torch::cat(flat_parts);  // [Σ numel]
    collectives_->broadcast_from_main(flat, "broadcasting the initial weights");
    int64_t offset = 0;
    for (auto& t : group) {
      t.copy_(flat.narrow(0, offset, t.numel()).view_as(t));
      offset += t.numel();
    }
  }
}

double Job::mean_over_ranks(double value, torch::Device device) {
  if (world_size() == 1) return value;
  torch::Tensor t = torch::full({1}, value, torch::TensorOptions().dtype(torch::kFloat64).device(device));
  collectives_->wait(collectives_->all_reduce_sum(t, "the all-reduce of the loss"), "the all-reduce of the loss");
  return t.item<double>() / world_size();
}

int64_t Job::value_of_main(int64_t value, torch::Device device) {
  if (world_size() == 1) return value;
  torch::Tensor t = torch::full({1}, value, torch::TensorOptions().dtype(torch::kInt64).device(device));
  collectives_->broadcast_from_main(t, "the broadcast of rank 0's resume step");
  return t.item<int64_t>();
}

data::Batch Job::shard(const data::Batch& global) const {
  if (world_size() == 1) return global;
  const int64_t rows = global.inputs.size(0);
  if (rows % world_size() != 0)
    throw std::invalid_argument("train.batch_size " + std::to_string(rows) + " is not divisible by the " +
                                std::to_string(world_size()) + " ranks of the job (WORLD_SIZE): each rank takes an "
                                "equal share of the global batch");
  const int64_t share = rows / world_size(), first = rank() * share;
  return {global.inputs.narrow(0, first, share).contiguous(), global.targets.narrow(0, first, share).contiguous(),
          global.mask.narrow(0, first, share).contiguous()};
}

// ============================================================================ gradient buckets
struct GradientReducer::State {
  struct Bucket {
    std::vector<size_t> members;  // indices into parameters
    size_t ready = 0;
    torch::Tensor flat;           // [Σ numel], the reduced gradients once `work` completes
    c10::intrusive_ptr<c10d::Work> work;
  };
  Job* job = nullptr;
  std::vector<torch::Tensor> parameters;
  std::vector<size_t> bucket_of;  // parameter index -> bucket
  std::vector<Bucket> buckets;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;  // kept alive: they hold the hooks
  size_t next_launch = 0;  // buckets launch in index order on every rank
  bool synchronise = false;
  bool active = true;      // false once the reducer is gone (hooks outlive it)
  std::mutex mutex;

  // g_bucket ← (1/W) · concat(g_p for p in bucket), then an async sum over ranks.
  void launch(size_t b) {
    Bucket& bucket = buckets[b];
    std::vector<torch::Tensor> parts;
    for (size_t i : bucket.members) {
      const auto& grad = parameters[i].grad();
      parts.push_back(grad.defined() ? grad.reshape({-1}) : torch::zeros({parameters[i].numel()}, parameters[i].options()));
    }
    bucket.flat = torch::cat(parts).div_(static_cast<double>(job->world_size()));
    bucket.work = job->collectives().all_reduce_sum(bucket.flat, "the all-reduce of gradient bucket " + std::to_string(b));
  }

  void launch_ready() {
    while (next_launch < buckets.size() && buckets[next_launch].ready == buckets[next_launch].members.size())
      launch(next_launch++);
  }

  void on_gradient(size_t index) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!active || !synchronise) return;
    ++buckets[bucket_of[index]].ready;
    launch_ready();
  }
};

GradientReducer::GradientReducer(Job& job, std::vector<torch::Tensor> parameters, int64_t bucket_bytes)
    : state_(std::make_shared<State>()) {
  state_->job = &job;
  for (auto& p : parameters)
    if (p.requires_grad()) state_->parameters.push_back(p);
  if (job.world_size() == 1) return;
  auto& params = state_->parameters;
  state_->bucket_of.resize(params.size());
  int64_t bytes = 0;
  for (size_t k = params.size(); k-- > 0;) {  // reverse registration order
    const int64_t size = params[k].numel() * static_cast<int64_t>(params[k].element_size());
    if (state_->buckets.empty() || (bytes + size > bucket_bytes && !state_->buckets.back().members.empty())) {
      state_->buckets.emplace_back();
      bytes = 0;
    }
    state_->buckets.back().members.push_back(k);
    state_->bucket_of[k] = state_->buckets.size() - 1;
    bytes += size;
  }
  std::weak_ptr<State> weak = state_;
  for (size_t k = 0; k < params.size(); ++k) {
    auto accumulator = torch::autograd::impl::grad_accumulator(params[k]);
    accumulator->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [weak, k](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
          if (auto state = weak.lock()) state->on_gradient(k);
          return outputs;
        }));
    state_->accumulators.push_back(std::move(accumulator));
  }
}

GradientReducer::~GradientReducer() {
  std::lock_guard<std::mutex> lock(state_->mutex);
  state_->active = false;
}

void GradientReducer::prepare(bool last_micro_batch) {
  std::lock_guard<std::mutex> lock(state_->mutex);
  state_->synchronise = last_micro_batch;
  state_->next_launch = 0;
  for (auto& bucket : state_->buckets) {
    bucket.ready = 0;
    bucket.work.reset();
  }
}

void GradientReducer::finish() {
  if (state_->job->world_size() == 1) return;
  std::lock_guard<std::mutex> lock(state_->mutex);
  while (state_->next_launch < state_->buckets.size()) state_->launch(state_->next_launch++);
  torch::NoGradGuard no_grad;
  for (size_t b = 0; b < state_->buckets.size(); ++b) {
    auto& bucket = state_->buckets[b];
    const std::string what = "the all-reduce of gradient bucket " + std::to_string(b);
    state_->job->collectives().wait_in_stream_order(bucket.work, what);
    int64_t offset = 0;
    for (size_t i : bucket.members) {
      auto& p = state_->parameters[i];
      auto reduced = bucket.flat.narrow(0, offset, p.numel()).view_as(p);
      if (p.grad().defined())
        p.mutable_grad().copy_(reduced);
      else
        p.mutable_grad() = reduced.clone();
      offset += p.numel();
    }
    bucket.work.reset();
  }
  state_->synchronise = false;
}

}  // namespace mixlab::distributed
