#pragma once
// The RoPE tables of positions 0 .. N-1, computed once and shared by every layer and every call.
//
//   rope_tables_cached(N, d_h, θ, options) = rope_tables(arange(N), d_h, θ, options)   (bit for bit)
//
// A forward used to rebuild the tables in every attention layer (arange, pow, mul, cat, cos, sin
// and casts in float64: about 13 small kernels, ~40 µs per layer on an H200 at N = 4096).  The
// cache keys an entry on (N, d_h, θ, dtype, device) and keeps the kRopeCacheEntries most recently
// used.
//
// CUDA graphs.  A tensor allocated while a stream is being captured lives in the graph's private
// pool, so nothing is inserted during a capture: a miss then computes the tables uncached (inside
// the graph, as before).  A hit during a capture returns tensors the graph will read at their
// address on every replay, so that entry is pinned: never evicted, since the cache cannot know when
// the graph dies.  When every entry is pinned, new keys are computed uncached.
//
// Streams.  An entry read on a CUDA stream other than the one it was made on is recorded as used
// there (Tensor::record_stream), so evicting it cannot hand its memory to a new allocation while a
// kernel queued on that stream still reads it.
//
// Thread-safe (one mutex).  The tensors returned are shared: callers must not modify them.

#include <torch/torch.h>

#include <cstddef>
#include <utility>

namespace mixlab {

// Entries kept at most (a few sequence lengths of a sweep, in one or two dtypes).
inline constexpr std::size_t kRopeCacheEntries = 8;

// cos and sin, each [N, head_dim], in options' dtype and device.
std::pair<torch::Tensor, torch::Tensor> rope_tables_cached(int64_t n, int64_t head_dim, double theta,
                                                           const torch::TensorOptions& options);

// What the cache holds now and how many lookups found their entry (tests and diagnostics).
struct RopeCacheStats {
  std::size_t entries = 0, pinned = 0, hits = 0;
};
RopeCacheStats rope_cache_stats();
// Drops every entry that is not pinned, and the pinned ones too with `pinned_too` (only once no
// captured graph that read them is alive: tests).
void clear_rope_cache(bool pinned_too = false);

}  // namespace mixlab
