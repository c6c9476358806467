#pragma once
// Where a measurement runs and how it is observed: device and dtype resolution, a timer that is
// honest on both the CPU and CUDA, peak-memory tracking, and provenance (host, device name,
// git commit) recorded with every row.
//
// Measurement rules (docs/design.md): on CUDA, time with CUDA events and synchronise; peak memory
// from the caching allocator's peak statistics, reset before each measurement.  On the CPU, wall
// clock (std::chrono::steady_clock) and the process's peak-RSS growth.

#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace mixlab {

struct Device {
  std::string kind = "cpu";       // "cpu" or "cuda"
  std::string dtype = "float32";  // "float32", "float64", "bfloat16", "float16"
  torch::Device torch_device() const;
  torch::ScalarType scalar_type() const;
  bool is_cuda() const { return kind == "cuda"; }
};

// "auto" -> "cuda" when LibTorch sees a GPU (and mixlab was built with CUDA), else "cpu".
// Throws ConfigError for anything but auto|cpu|cuda, or for cuda without a GPU.
std::string resolve_device_kind(const std::string& requested, const std::string& origin);
// "auto" -> float32 on the CPU, bfloat16 on CUDA.
std::string resolve_dtype(const std::string& requested, const std::string& device_kind);
torch::ScalarType scalar_type_of(const std::string& dtype);
int64_t bytes_per_element(const std::string& dtype);

// Wait until all queued work on the device has finished (no-op on the CPU).
void synchronize(const Device& device);
// Return cached device memory to the driver (after an out-of-memory error); no-op on the CPU.
void release_cached_memory(const Device& device);

// Times one call of a function in milliseconds.  On CUDA: events recorded around the call on
// the current stream, then the end event is synchronised; on the CPU: steady_clock.
class CallTimer {
 public:
  explicit CallTimer(const Device& device);
  ~CallTimer();
  CallTimer(const CallTimer&) = delete;
  CallTimer& operator=(const CallTimer&) = delete;
  void start();
  double stop_ms();  // blocks until the timed work has finished

 private:
  Device device_;
  std::chrono::steady_clock::time_point cpu_start_;
  void* cuda_events_ = nullptr;  // owned pair of at::cuda::CUDAEvent under MIXLAB_WITH_CUDA
};

// Peak memory during a measurement.
//   CUDA: the caching allocator's peak allocated bytes since reset() (absolute: weights,
//         activations and workspace, as torch.cuda.max_memory_allocated reports it).
//   CPU:  growth of the process's peak resident set (VmHWM) over the resident set at reset();
//         reset() writes "5" to /proc/self/clear_refs, the only way to reset VmHWM.  Where that
//         file cannot be written, peak_bytes() returns NaN (unknown) unless the peak grew.
class PeakMemory {
 public:
  explicit PeakMemory(const Device& device) : device_(device) {}
  void reset();
  double peak_bytes() const;
  // What was in use when reset() ran (CUDA: allocated bytes; CPU: the resident set): memory the
  // measurement did not make but the CUDA peak includes.  A row stores it (extra_json
  // "memory_in_use_at_start_bytes") so that leftovers of earlier work in the process show.
  double bytes_at_reset() const { return static_cast<double>(in_use_at_reset_); }

 private:
  Device device_;
  int64_t in_use_at_reset_ = 0;
  int64_t rss_at_reset_ = 0;
  int64_t hwm_at_reset_ = 0;
  bool hwm_was_reset_ = false;
};

// Memory in use now: CUDA, the caching allocator's allocated bytes (torch.cuda.memory_allocated);
// CPU, the resident set (VmRSS; -1 when unavailable).
int64_t memory_in_use_bytes(const Device& device);

// One call alone inside the CUDA profiler's range (cudaProfilerStart ... cudaProfilerStop), for
// `ncu --profile-from-start off` (bench/kernel_breakdown.sh): the range opens on construction and
// closes, after the device has finished the call's work, on destruction.  Measurement makes one
// such extra untimed call per row after its warm-up when $MIXLAB_PROFILE_RANGE is set and the
// build has CUDA; otherwise nothing happens.
class ProfiledRange {
 public:
  static bool requested();
  ProfiledRange();
  ~ProfiledRange();
  ProfiledRange(const ProfiledRange&) = delete;
  ProfiledRange& operator=(const ProfiledRange&) = delete;
};

// Kilobyte fields of /proc/self/status ("VmRSS", "VmHWM") in bytes; -1 when unavailable.
int64_t proc_status_bytes(const std::string& field);

// An exception that means "the device ran out of memory" (CUDA caching allocator, the CPU
// allocator, std::bad_alloc), recognised by type and message so it works across LibTorch
// versions.
bool is_out_of_memory(const std::exception& error);

// Provenance.
std::string host_name();
std::string device_name(const Device& device);  // GPU name, or the CPU model
std::string git_commit();                        // $MIXLAB_GIT_COMMIT, else git rev-parse HEAD (+ "-dirty")
std::string utc_now_iso8601();

// torch::set_num_threads(n) for a scope (n = 0 leaves the setting alone); the previous count is
// restored on exit, so a sweep's next point starts from the process default again.
class ScopedThreadCount {
 public:
  explicit ScopedThreadCount(int64_t threads) : saved_(torch::get_num_threads()) {
    if (threads > 0) torch::set_num_threads(static_cast<int>(threads));
  }
  ~ScopedThreadCount() { torch::set_num_threads(saved_); }
  ScopedThreadCount(const ScopedThreadCount&) = delete;
  ScopedThreadCount& operator=(const ScopedThreadCount&) = delete;

 private:
  int saved_;
};

}  // namespace mixlab
