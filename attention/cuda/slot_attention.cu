// Kernels of attention/cuda/slot_attention.h: single-query attention over a static cache's slots.
//
// Partial kernel, block (split, bh), 4 warps, over the slots of its split up to ⌊t/divisor⌋ (t read
// from the device): warp w takes slots begin + w, begin + w + 4, ...,
// kUnroll of them per iteration (their key and value rows are loaded before any is used, so each
// warp keeps several rows in flight).  Lane l holds elements [l·P, l·P + P) of q, of each row and of
// the accumulator (P = d_h / 32), so a row is one coalesced load per warp and a score one warp
// sum.  Scores are in the log2 domain: s = q·k · scale · log2 e, weights 2^(s − m).  Per warp an
// online softmax (m, l, acc); the block merges its 4 warps in shared memory and writes its partial.
// Merge kernel, block bh, d_h threads: M = max m_i, L = Σ l_i 2^(m_i − M), o = Σ acc_i 2^(m_i − M) / L.
// With the trial MIXLAB_SLOT_CLUSTER_MERGE=1 (core/ab_switch.h) and at most kClusterSplits splits,
// the splits of one (b, h) are one thread block cluster (core/cuda/cluster_launch.cuh): each block
// keeps its partial in shared memory and the cluster's first block merges them from there, the same
// sums as the merge kernel, so the step is one kernel instead of two.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include <cooperative_groups.h>

#include "attention/cuda/slot_attention.h"
#include "core/ab_switch.h"
#include "core/cuda/cluster_launch.cuh"

namespace mixlab::cuda::detail {
namespace {

constexpr int kWarps = 4;
constexpr int kUnroll = 4;
constexpr int kMinChunk = 256;   // slots per split, at least
constexpr int kMaxSplits = 512;  // splits per (b, h), at most
constexpr int kClusterSplits = 8;  // splits merged inside one cluster, at most (the portable cluster size)
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) { return x; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16(x); }
template <>
__device__ __forceinline__ __half from_float<__half>(float x) { return __float2half(x); }

// P consecutive elements, loaded as one aligned vector.
template <typename T, int P>
struct alignas(sizeof(T) * P) Pack {
  T v[P];
};

template <typename T, int P>
__device__ __forceinline__ void load_row(const T* row, int lane, float (&out)[P]) {
  const Pack<T, P> pack = *reinterpret_cast<const Pack<T, P>*>(row + lane * P);
#pragma unroll
  for (int e = 0; e < P; ++e) out[e] = to_float(pack.v[e]);
}

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

// The merge of slot_attention_merge over the splits of one (b, h), each a block of this cluster
// whose partial (acc [D], m, l) is `block_partial` in its shared memory; the cluster's first block
// writes o [D].  Every thread of every block calls it.
template <typename T, int D>
__device__ void merge_in_cluster(const float* block_partial, T* out) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
  const cg::cluster_group cluster = cg::this_cluster();
  cluster.sync();  // every split's partial written
  if (cluster.block_rank() == 0) {
    const int splits = static_cast<int>(cluster.num_blocks());
    for (int e = threadIdx.x; e < D; e += blockDim.x) {
      float m_all = -INFINITY;
      for (int i = 0; i < splits; ++i) m_all = fmaxf(m_all, cluster.map_shared_rank(block_partial, i)[D]);
      float l_all = 0.f, acc = 0.f;
      if (m_all != -INFINITY) {
        for (int i = 0; i < splits; ++i) {
          const float* p = cluster.map_shared_rank(block_partial, i);
          if (p[D] == -INFINITY) continue;
          const float weight = exp2f(p[D] - m_all);
          l_all += p[D + 1] * weight;
          acc += p[e] * weight;
        }
      }
      out[e] = from_float<T>(l_all > 0.f ? acc / l_all : 0.f);
    }
  }
  cluster_arrive();  // the first block's reads of its peers are done ...
  cluster_wait();    // ... before any block exits
#else
  __trap();  // clusters need sm_90; slot_attention takes this path only where clusters_run says so
#endif
}

// kClusterMerge: the launch made the splits of each (b, h) one cluster (rank = split); the block
// keeps its partial in shared memory and the first block of the cluster merges them into `out`
// (`partial` unused).  Otherwise the partial goes to `partial` for slot_attention_merge.
template <typename T, int D, bool kClusterMerge>
__global__ void __launch_bounds__(kWarps * 32)
    slot_attention_partial(SlotAttentionShape s, const T* __restrict__ q, const T* __restrict__ keys,
                           const T* __restrict__ values, const int64_t* __restrict__ position,
                           float* __restrict__ partial, T* __restrict__ out) {
  constexpr int P = D / 32;
  const int split = blockIdx.x, bh = blockIdx.y;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  wait_for_prerequisites();  // q, the cache and the position are earlier kernels' (core/cuda/dependent_launch.cuh)
  let_dependents_launch();
  const long long last = *position / s.divisor;  // the last slot attended to
  const int limit = static_cast<int>(min(static_cast<long long>(s.count), last + 1));
  const int begin = split * s.chunk, end = min(limit, begin + s.chunk);
  const long long row0 = static_cast<long long>(bh) * s.capacity;

  float qr[P];
  load_row<T, P>(q + static_cast<long long>(bh) * D, lane, qr);
#pragma unroll
  for (int e = 0; e < P; ++e) qr[e] *= s.scale * kLog2e;

  float m = -INFINITY, l = 0.f, acc[P];
#pragma unroll
  for (int e = 0; e < P; ++e) acc[e] = 0.f;

  for (int base = begin + warp; base < end; base += kWarps * kUnroll) {
    float kr[kUnroll][P], vr[kUnroll][P];
    bool use[kUnroll];  // uniform over the warp: j is the warp's
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {  // the loads first: kUnroll rows in flight per warp
      const int j = base + u * kWarps;
      use[u] = j < end;
      if (use[u]) {
        load_row<T, P>(keys + (row0 + j) * D, lane, kr[u]);
        load_row<T, P>(values + (row0 + j) * D, lane, vr[u]);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (!use[u]) continue;
      float dot = 0.f;
#pragma unroll
      for (int e = 0; e < P; ++e) dot += qr[e] * kr[u][e];
      const float score = warp_sum(dot);
      const float m_new = fmaxf(m, score);
      const float keep = exp2f(m - m_new), weight = exp2f(score - m_new);
      l = l * keep + weight;
#pragma unroll
      for (int e = 0; e < P; ++e) acc[e] = acc[e] * keep + weight * vr[u][e];
      m = m_new;
    }
  }

  // Merge the warps: shared [kWarps][D + 2] (acc, then m and l).
  __shared__ float merged[kWarps][D + 2];
#pragma unroll
  for (int e = 0; e < P; ++e) merged[warp][lane * P + e] = acc[e];
  if (lane == 0) {
    merged[warp][D] = m;
    merged[warp][D + 1] = l;
  }
  __syncthreads();
  __shared__ float block_partial[kClusterMerge ? D + 2 : 1];  // this split's (acc, m, l), for its cluster
  float* destination = kClusterMerge ? block_partial : partial + (static_cast<long long>(bh) * s.splits + split) * (D + 2);
  float m_all = -INFINITY;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) m_all = fmaxf(m_all, merged[w][D]);
  for (int e = threadIdx.x; e < D + 2; e += blockDim.x) {
    float total = 0.f;
    if (e == D) {
      total = m_all;
    } else if (m_all != -INFINITY) {  // else nothing was visible in this split: l = acc = 0
#pragma unroll
      for (int w = 0; w < kWarps; ++w)
        if (merged[w][D] != -INFINITY) total += merged[w][e] * exp2f(merged[w][D] - m_all);
    }
    destination[e] = total;
  }
  if constexpr (kClusterMerge) merge_in_cluster<T, D>(block_partial, out + static_cast<long long>(bh) * D);
}

template <typename T, int D>
__global__ void __launch_bounds__(D) slot_attention_merge(SlotAttentionShape s, const float* __restrict__ partial,
                                                          T* __restrict__ out) {
  const int bh = blockIdx.x, e = threadIdx.x;
  wait_for_prerequisites();
  let_dependents_launch();
  const float* row = partial + static_cast<long long>(bh) * s.splits * (D + 2);
  float m_all = -INFINITY;
  for (int i = 0; i < s.splits; ++i) m_all = fmaxf(m_all, row[i * (D + 2) + D]);
  float l_all = 0.f, acc = 0.f;
  if (m_all != -INFINITY) {
    for (int i = 0; i < s.splits; ++i) {
      const float m = row[i * (D + 2) + D];
      if (m == -INFINITY) continue;
      const float weight = exp2f(m - m_all);
      l_all += row[i * (D + 2) + D + 1] * weight;
      acc += row[i * (D + 2) + e] * weight;
    }
  }
  out[static_cast<long long>(bh) * D + e] = from_float<T>(l_all > 0.f ? acc / l_all : 0.f);
}

// Whether the splits merge inside their cluster: the trial is on, they fit one cluster, and the
// GPU and the build run clusters.
template <typename T, int D>
bool merge_in_clusters(const SlotAttentionShape& s) {
  if (s.splits > kClusterSplits || !ab_trial_on("MIXLAB_SLOT_CLUSTER_MERGE")) return false;
  static const bool runs = clusters_run(slot_attention_partial<T, D, true>);
  return runs;
}

template <typename T, int D>
void launch(const SlotAttentionShape& s, const void* q, const void* keys, const void* values, const int64_t* position,
            float* partial, void* out, cudaStream_t stream) {
  const auto* q_ = static_cast<const T*>(q);
  const auto *keys_ = static_cast<const T*>(keys), *values_ = static_cast<const T*>(values);
  if (merge_in_clusters<T, D>(s)) {
    launch_dependent_cluster("slot_attention", slot_attention_partial<T, D, true>, dim3(s.splits, s.batch_heads),
                             dim3(kWarps * 32), 0, static_cast<unsigned>(s.splits), stream, s, q_, keys_, values_,
                             position, partial, static_cast<T*>(out));
    return;
  }
  launch_dependent("slot_attention", slot_attention_partial<T, D, false>, dim3(s.splits, s.batch_heads),
                   dim3(kWarps * 32), 0, stream, s, q_, keys_, values_, position, partial, static_cast<T*>(out));
  launch_dependent("slot_attention", slot_attention_merge<T, D>, dim3(s.batch_heads), dim3(D), 0, stream, s,
                   static_cast<const float*>(partial), static_cast<T*>(out));
}

template <typename T>
void launch_for_dim(const SlotAttentionShape& s, const void* q, const void* keys, const void* values,
                    const int64_t* position, float* partial, void* out, cudaStream_t stream) {
  if (s.head_dim == 64)
    launch<T, 64>(s, q, keys, values, position, partial, out, stream);
  else
    launch<T, 128>(s, q, keys, values, position, partial, out, stream);
}

}  // namespace

bool slot_attention_supported(int head_dim) { return head_dim == 64 || head_dim == 128; }

void slot_attention_splits(SlotAttentionShape& shape) {
  const int by_chunk = (shape.count + kMinChunk - 1) / kMinChunk;
  shape.splits = by_chunk < kMaxSplits ? by_chunk : kMaxSplits;
  shape.chunk = (shape.count + shape.splits - 1) / shape.splits;
}

void slot_attention(const SlotAttentionShape& shape, const void* q, const void* keys, const void* values,
                    const int64_t* position, float* partial, void* out, void* stream) {
  if (!slot_attention_supported(shape.head_dim) || shape.count < 1 || shape.count > shape.capacity || shape.divisor < 1 ||
      shape.splits < 1 || shape.chunk * shape.splits < shape.count)
    throw std::invalid_argument("slot_attention: unsupported shape (head_dim " + std::to_string(shape.head_dim) +
                                ", count " + std::to_string(shape.count) + ", capacity " +
                                std::to_string(shape.capacity) + ")");
  const auto s = static_cast<cudaStream_t>(stream);
  switch (shape.element) {
    case SlotElement::bf16: launch_for_dim<__nv_bfloat16>(shape, q, keys, values, position, partial, out, s); break;
    case SlotElement::fp16: launch_for_dim<__half>(shape, q, keys, values, position, partial, out, s); break;
    case SlotElement::fp32: launch_for_dim<float>(shape, q, keys, values, position, partial, out, s); break;
  }
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) throw std::runtime_error(std::string("slot_attention: ") + cudaGetErrorString(status));
}

}  // namespace mixlab::cuda::detail
