#include "harness/device.h"

#include "harness/config.h"
#include "core/compat.h"

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <thread>
#include <limits>
#include <new>
#include <sstream>

#include <unistd.h>

#ifdef MIXLAB_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_profiler_api.h>
#include <cuda_runtime_api.h>
#endif

namespace mixlab {

torch::ScalarType scalar_type_of(const std::string& dtype) {
  if (dtype == "float32") return torch::kFloat32;
  if (dtype == "float64") return torch::kFloat64;
  if (dtype == "bfloat16") return torch::kBFloat16;
  if (dtype == "float16") return torch::kFloat16;
  throw ConfigError("", "measure.dtype", "unknown dtype '" + dtype + "'; valid: auto, float32, float64, bfloat16, float16");
}

int64_t bytes_per_element(const std::string& dtype) {
  return static_cast<int64_t>(c10::elementSize(scalar_type_of(dtype)));
}

torch::Device Device::torch_device() const { return is_cuda() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU); }
torch::ScalarType Device::scalar_type() const { return scalar_type_of(dtype); }

std::string resolve_device_kind(const std::string& requested, const std::string& origin) {
  // CUDA timing and memory statistics need mixlab built against a CUDA LibTorch.
#ifdef MIXLAB_WITH_CUDA
  const bool cuda = torch::cuda::is_available();
#else
  const bool cuda = false;
#endif
  if (requested == "auto") return cuda ? "cuda" : "cpu";
  if (requested == "cpu") return "cpu";
  if (requested == "cuda") {
    if (!cuda)
      throw ConfigError(origin, "", "cuda was asked for, but this mixlab has no CUDA build or LibTorch sees no GPU");
    return "cuda";
  }
  throw ConfigError(origin, "", "unknown device '" + requested + "'; valid: auto, cpu, cuda");
}

std::string resolve_dtype(const std::string& requested, const std::string& device_kind) {
  if (requested == "auto") return device_kind == "cuda" ? "bfloat16" : "float32";
  scalar_type_of(requested);  // validates
  return requested;
}

void synchronize(const Device& device) {
#ifdef MIXLAB_WITH_CUDA
  if (device.is_cuda()) torch::cuda::synchronize();
#endif
}

void release_cached_memory(const Device& device) {
#ifdef MIXLAB_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
}

// ------------------------------------------------------------------------------ CallTimer

#ifdef MIXLAB_WITH_CUDA
namespace {
struct EventPair {
  at::cuda::CUDAEvent start{cudaEventDefault};  // the default CUDAEvent disables timing
  at::cuda::CUDAEvent end{cudaEventDefault};
};
}  // namespace
#endif

CallTimer::CallTimer(const Device& device) : device_(device) {
#ifdef MIXLAB_WITH_CUDA
  if (device_.is_cuda()) cuda_events_ = new EventPair();
#endif
}

CallTimer::~CallTimer() {
#ifdef MIXLAB_WITH_CUDA
  delete static_cast<EventPair*>(cuda_events_);
#endif
}

void CallTimer::start() {
#ifdef MIXLAB_WITH_CUDA
  if (cuda_events_) {
    static_cast<EventPair*>(cuda_events_)->start.record(at::cuda::getCurrentCUDAStream());
    return;
  }
#endif
  cpu_start_ = std::chrono::steady_clock::now();
}

double CallTimer::stop_ms() {
#ifdef MIXLAB_WITH_CUDA
  if (cuda_events_) {
    auto* events = static_cast<EventPair*>(cuda_events_);
    events->end.record(at::cuda::getCurrentCUDAStream());
    events->end.synchronize();
    return static_cast<double>(events->start.elapsed_time(events->end));
  }
#endif
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - cpu_start_).count();
}

// ------------------------------------------------------------------------------ PeakMemory

int64_t proc_status_bytes(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, field.size() + 1, field + ":") == 0) {
      std::istringstream fields(line.substr(field.size() + 1));
      int64_t kilobytes = -1;
      fields >> kilobytes;
      return kilobytes < 0 ? -1 : kilobytes * 1024;
    }
  }
  return -1;
}

bool ProfiledRange::requested() {
#ifdef MIXLAB_WITH_CUDA
  static const bool on = std::getenv("MIXLAB_PROFILE_RANGE") != nullptr;
  return on;
#else
  return false;
#endif
}

ProfiledRange::ProfiledRange() {
#ifdef MIXLAB_WITH_CUDA
  if (requested()) {
    (void)cudaDeviceSynchronize();
    (void)cudaProfilerStart();
  }
#endif
}

ProfiledRange::~ProfiledRange() {
#ifdef MIXLAB_WITH_CUDA
  if (requested()) {
    (void)cudaDeviceSynchronize();
    (void)cudaProfilerStop();
  }
#endif
}

int64_t memory_in_use_bytes(const Device& device) {
#ifdef MIXLAB_WITH_CUDA
  if (device.is_cuda()) return compat::cuda_allocated_bytes(0);
#endif
  return proc_status_bytes("VmRSS");
}

void PeakMemory::reset() {
#ifdef MIXLAB_WITH_CUDA
  if (device_.is_cuda()) {
    synchronize(device_);
    compat::cuda_reset_peak_memory(0);
    in_use_at_reset_ = compat::cuda_allocated_bytes(0);
    return;
  }
#endif
  // Writing "5" to clear_refs resets the peak resident set size to the current RSS.
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  hwm_was_reset_ = static_cast<bool>(clear);
  rss_at_reset_ = proc_status_bytes("VmRSS");
  in_use_at_reset_ = rss_at_reset_;
  hwm_at_reset_ = proc_status_bytes("VmHWM");
}

double PeakMemory::peak_bytes() const {
#ifdef MIXLAB_WITH_CUDA
  if (device_.is_cuda()) return static_cast<double>(compat::cuda_peak_allocated_bytes(0));
#endif
  const int64_t hwm = proc_status_bytes("VmHWM");
  if (hwm < 0 || rss_at_reset_ < 0) return std::numeric_limits<double>::quiet_NaN();
  if (!hwm_was_reset_ && hwm <= hwm_at_reset_) return std::numeric_limits<double>::quiet_NaN();
  return static_cast<double>(std::max<int64_t>(0, hwm - rss_at_reset_));
}

bool is_out_of_memory(const std::exception& error) {
  if (dynamic_cast<const std::bad_alloc*>(&error)) return true;
  const std::string message = error.what();
  for (const char* sign : {"out of memory", "can't allocate memory", "not enough memory", "CUDA error: out of memory",
                           "OutOfMemory"})
    if (message.find(sign) != std::string::npos) return true;
  return false;
}

// ------------------------------------------------------------------------------ provenance

std::string host_name() {
  std::array<char, 256> buffer{};
  if (gethostname(buffer.data(), buffer.size() - 1) != 0) return "unknown";
  return buffer.data();
}

std::string device_name(const Device& device) {
#ifdef MIXLAB_WITH_CUDA
  if (device.is_cuda()) return at::cuda::getDeviceProperties(0)->name;
#endif
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) {
        auto name = line.substr(colon + 1);
        name.erase(0, name.find_first_not_of(' '));
        // The thread count can differ per point (measure.threads, train.threads): each
        // measurement records its own; this names the machine.
        return name + " (" + std::to_string(std::thread::hardware_concurrency()) + " hardware threads)";
      }
    }
  return "cpu";
}

namespace {
std::string run_and_read(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return out;
  std::array<char, 256> buffer{};
  while (fgets(buffer.data(), buffer.size(), pipe)) out += buffer.data();
  const int status = pclose(pipe);
  if (status != 0) return "";
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}
}  // namespace

std::string git_commit() {
  if (const char* env = std::getenv("MIXLAB_GIT_COMMIT")) return env;
  static const std::string commit = [] {
    const std::string dir = MIXLAB_SOURCE_DIR;
    std::string head = run_and_read("git -C '" + dir + "' rev-parse HEAD 2>/dev/null");
    if (head.empty()) return std::string("unknown");
    const std::string dirty =
        run_and_read("git -C '" + dir + "' status --porcelain --untracked-files=no 2>/dev/null");
    return dirty.empty() ? head : head + "-dirty";
  }();
  return commit;
}

std::string utc_now_iso8601() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[96];  // room for any int in every field (-Wformat-truncation)
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(millis));
  return buffer;
}

}  // namespace mixlab
