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

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "attention/cuda/slot_attention.h"
#include "core/cuda/dependent_launch.cuh"

namespace mixlab::cuda::detail {
namespace {

constexpr int kWarps = 4;
constexpr int kUnroll = 4;
constexpr int kMinChunk = 256;   // slots per split, at least
constexpr int kMaxSplits = 512;  // splits per (b, h), at most
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

template <typename T, int D>
__global__ void __launch_bounds__(kWarps * 32)
    slot_attention_partial(SlotAttentionShape s, const T* __restrict__ q, const T* __restrict__ keys,
                           const T* __restrict__ values, const int64_t* __restrict__ position,
                           float* __restrict__ partial) {
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
  float* out = partial + (static_cast<long long>(bh) * s.splits + split) * (D + 2);
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
    out[e] = total;
  }
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

template <typename T, int D>
void launch(const SlotAttentionShape& s, const void* q, const void* keys, const void* values, const int64_t* position,
            float* partial, void* out, cudaStream_t stream) {
  launch_dependent("slot_attention", slot_attention_partial<T, D>, dim3(s.splits, s.batch_heads), dim3(kWarps * 32), 0,
                   stream, s, static_cast<const T*>(q), static_cast<const T*>(keys), static_cast<const T*>(values),
                   position, partial);
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
