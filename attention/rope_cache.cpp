#include "attention/rope_cache.h"

#include "attention/rope.h"

#ifdef MIXLAB_WITH_CUDA
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

#include <mutex>
#include <optional>
#include <vector>

namespace mixlab {
// Named, not anonymous: in a unity build this file shares a translation unit with other sources.
namespace rope_cache_detail {

struct RopeKey {
  int64_t n = 0, head_dim = 0;
  double theta = 0;
  torch::ScalarType dtype = torch::kFloat;
  torch::Device device = torch::kCPU;
  bool operator==(const RopeKey& other) const {
    return n == other.n && head_dim == other.head_dim && theta == other.theta && dtype == other.dtype &&
           device == other.device;
  }
};

struct RopeEntry {
  RopeKey key;
  torch::Tensor cos, sin;     // [N, d_h]
  uint64_t last_used = 0;     // the cache's clock at the last lookup
  bool pinned = false;        // read by a captured CUDA graph: never evicted
  std::vector<c10::Stream> streams;  // the CUDA streams it was made on or recorded on
};

struct RopeCache {
  std::mutex mutex;
  std::vector<RopeEntry> entries;  // at most kRopeCacheEntries
  uint64_t clock = 0;
  std::size_t hits = 0;
};

// Never destroyed: CUDA tensors freed by a static destructor after the driver has shut down at
// exit would fail.
RopeCache& the_cache() {
  static auto* cache = new RopeCache;
  return *cache;
}

// Whether the current stream of `device` is capturing a CUDA graph (false on the CPU).
bool capturing(const torch::Device& device) {
#ifdef MIXLAB_WITH_CUDA
  if (!device.is_cuda()) return false;
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  const auto stream = c10::cuda::getCurrentCUDAStream(device.index()).stream();
  if (cudaStreamIsCapturing(stream, &status) != cudaSuccess) {
    // The legacy default stream while another stream captures: behave as inside a capture, and
    // clear the error so that the next launch check does not report it.
    (void)cudaGetLastError();
    return true;
  }
  return status != cudaStreamCaptureStatusNone;
#else
  return false;
#endif
}

// The current stream of a CUDA device; nullopt on the CPU.
std::optional<c10::Stream> current_stream(const torch::Device& device) {
#ifdef MIXLAB_WITH_CUDA
  if (device.is_cuda()) return c10::cuda::getCurrentCUDAStream(device.index()).unwrap();
#endif
  return std::nullopt;
}

// An entry read on a stream it was not made on: tell the caching allocator, so that freeing the
// tables (eviction) waits for the kernels queued there.
void note_stream(RopeEntry& entry, const torch::Device& device) {
  const auto stream = current_stream(device);
  if (!stream) return;
  for (const auto& known : entry.streams)
    if (known == *stream) return;
  entry.cos.record_stream(*stream);
  entry.sin.record_stream(*stream);
  entry.streams.push_back(*stream);
}

// rope_tables(arange(N), ...), as multi-head attention computed them per call.
std::pair<torch::Tensor, torch::Tensor> compute(const RopeKey& key, const torch::TensorOptions& options) {
  torch::NoGradGuard no_grad;
  const c10::InferenceMode not_inference(false);  // shared tables must be usable by autograd later
  auto positions = torch::arange(key.n, torch::TensorOptions().dtype(torch::kLong).device(key.device));
  return rope_tables(positions, key.head_dim, key.theta, options);
}

// The index where a new entry goes: a free place, else the least recently used entry that is not
// pinned (evicted); -1 when every place holds a pinned entry.
int64_t place_for_new_entry(RopeCache& cache) {
  if (cache.entries.size() < kRopeCacheEntries) {
    cache.entries.emplace_back();
    return static_cast<int64_t>(cache.entries.size()) - 1;
  }
  int64_t oldest = -1;
  for (size_t i = 0; i < cache.entries.size(); ++i) {
    const auto& entry = cache.entries[i];
    if (!entry.pinned && (oldest < 0 || entry.last_used < cache.entries[oldest].last_used))
      oldest = static_cast<int64_t>(i);
  }
  if (oldest >= 0) cache.entries[oldest] = RopeEntry{};
  return oldest;
}

// The cached tables of `key`, or freshly computed ones (see rope_cache.h for when they are kept).
std::pair<torch::Tensor, torch::Tensor> lookup(const RopeKey& key, const torch::TensorOptions& options) {
  const bool in_capture = capturing(key.device);
  auto& cache = the_cache();
  const std::lock_guard<std::mutex> lock(cache.mutex);
  for (auto& entry : cache.entries) {
    if (!(entry.key == key)) continue;
    entry.last_used = ++cache.clock;
    ++cache.hits;
    if (in_capture) entry.pinned = true;  // the graph reads these tensors on every replay
    else note_stream(entry, key.device);
    return {entry.cos, entry.sin};
  }
  auto tables = compute(key, options);
  if (in_capture) return tables;  // allocated in the graph's pool: not kept
  const int64_t place = place_for_new_entry(cache);
  if (place < 0) return tables;  // every entry is pinned
  auto& entry = cache.entries[place];
  entry.key = key;
  entry.cos = tables.first;
  entry.sin = tables.second;
  entry.last_used = ++cache.clock;
  if (const auto stream = current_stream(key.device)) entry.streams.push_back(*stream);
  return tables;
}

}  // namespace rope_cache_detail

std::pair<torch::Tensor, torch::Tensor> rope_tables_cached(int64_t n, int64_t head_dim, double theta,
                                                           const torch::TensorOptions& options) {
  const rope_cache_detail::RopeKey key{n, head_dim, theta, c10::typeMetaToScalarType(options.dtype()),
                                       options.device()};
  return rope_cache_detail::lookup(key, options);
}

RopeCacheStats rope_cache_stats() {
  auto& cache = rope_cache_detail::the_cache();
  const std::lock_guard<std::mutex> lock(cache.mutex);
  RopeCacheStats stats;
  stats.entries = cache.entries.size();
  stats.hits = cache.hits;
  for (const auto& entry : cache.entries) stats.pinned += entry.pinned ? 1 : 0;
  return stats;
}

void clear_rope_cache(bool pinned_too) {
  auto& cache = rope_cache_detail::the_cache();
  const std::lock_guard<std::mutex> lock(cache.mutex);
  std::vector<rope_cache_detail::RopeEntry> kept;
  for (auto& entry : cache.entries)
    if (entry.pinned && !pinned_too) kept.push_back(std::move(entry));
  cache.entries = std::move(kept);
}

}  // namespace mixlab
