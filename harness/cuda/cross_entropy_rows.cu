// The softmax statistics of a cross entropy, one pass over each row of logits each way
// (harness/cuda/launch.h; the reference is harness/cross_entropy_rows.cpp's reference namespace):
//
//   forward   lse_i = log Σ_v exp(l_iv),   picked_i = l_{i, y_i}
//   backward  l_iv ← scale · (exp(l_iv − lse_i) − [v = y_i])        in place, in the logits' element
//
// where LibTorch converts the logits to float32, reduces twice (max, then Σ exp) and gathers
// forward, and converts, subtracts, exponentiates, scatters, scales and converts back backward:
// about 13 passes over [rows, V] float32 instead of 3 over [rows, V] of the logits' element
// (measured on a Zoology training step: 1.45 ms of its 3.3 ms on the GPU, docs/PERF.md).
//
// One block of kThreads per row.  Forward: every thread keeps a running (max m, Σ exp(l − m)) over
// the vectors it reads (rescaling by exp(m_old − m_new) when a vector raises the max: the online
// softmax of Milakov & Gimelshein, arXiv 1805.02867), then the pairs are merged across the warp
// and the block.  Arithmetic in float32.  A target outside [0, V) gives picked = NaN (the loss
// turns NaN instead of reading past the row).

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "core/cuda/elements.cuh"
#include "harness/cuda/launch.h"

namespace mixlab::cuda::detail {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr float kLog2e = 1.4426950408889634f;

// (m, s) with s = Σ exp(x − m) over the values seen; m = −inf, s = 0 before any.
struct RunningSum {
  float m = -INFINITY, s = 0.f;
};

// The pair of the union of two sets of values.
__device__ __forceinline__ RunningSum merge(RunningSum a, RunningSum b) {
  const float m = fmaxf(a.m, b.m);
  if (m == -INFINITY) return a;
  return {m, a.s * exp2f((a.m - m) * kLog2e) + b.s * exp2f((b.m - m) * kLog2e)};
}

// The block's pair, valid in every thread.
__device__ __forceinline__ RunningSum block_merge(RunningSum r) {
  __shared__ float warp_m[kWarps], warp_s[kWarps];
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    const RunningSum other{__shfl_xor_sync(0xffffffffu, r.m, offset), __shfl_xor_sync(0xffffffffu, r.s, offset)};
    r = merge(r, other);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    warp_m[warp] = r.m;
    warp_s[warp] = r.s;
  }
  __syncthreads();
  RunningSum total;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) total = merge(total, RunningSum{warp_m[w], warp_s[w]});
  return total;
}

// T: the logits' element; V: elements per vector load (1 where rows are not 16-byte aligned).
template <typename T, int V>
__global__ void __launch_bounds__(kThreads)
    cross_entropy_rows_forward_kernel(const T* __restrict__ logits, long long vocab, const long long* __restrict__ targets,
                                      float* __restrict__ lse, float* __restrict__ picked) {
  const long long row = blockIdx.x;
  const T* l = logits + row * vocab;
  RunningSum r;
  for (long long v = static_cast<long long>(threadIdx.x) * V; v < vocab; v += static_cast<long long>(kThreads) * V) {
    float x[V];
    load_pack<T, V>(l + v, x);
    float vector_max = x[0];
#pragma unroll
    for (int e = 1; e < V; ++e) vector_max = fmaxf(vector_max, x[e]);
    const float m = fmaxf(r.m, vector_max);
    float s = r.s * exp2f((r.m - m) * kLog2e);  // r.m = −inf: 0
#pragma unroll
    for (int e = 0; e < V; ++e) s += exp2f((x[e] - m) * kLog2e);
    r = {m, s};
  }
  r = block_merge(r);
  if (threadIdx.x != 0) return;
  lse[row] = r.m + logf(r.s);
  const long long y = targets[row];
  picked[row] = (y >= 0 && y < vocab) ? to_f(l[y]) : NAN;
}

template <typename T, int V>
__global__ void __launch_bounds__(kThreads)
    cross_entropy_rows_backward_kernel(T* __restrict__ logits, long long vocab, const long long* __restrict__ targets,
                                       const float* __restrict__ lse, const float* __restrict__ scale) {
  const long long row = blockIdx.x;
  T* l = logits + row * vocab;
  const float shift = lse[row] * kLog2e, g = *scale;
  const long long y = targets[row];
  for (long long v = static_cast<long long>(threadIdx.x) * V; v < vocab; v += static_cast<long long>(kThreads) * V) {
    float x[V];
    load_pack<T, V>(l + v, x);
#pragma unroll
    for (int e = 0; e < V; ++e) x[e] = g * (exp2f(x[e] * kLog2e - shift) - (v + e == y ? 1.f : 0.f));
    store_pack<T, V>(l + v, x);
  }
}

void check_cuda(cudaError_t error, const char* what) {
  if (error != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(error));
}

void check_shape(long long rows, long long vocab, const char* what) {
  if (rows < 1 || rows > 0x7fffffffLL || vocab < 1)
    throw std::invalid_argument(std::string(what) + ": unsupported shape (rows " + std::to_string(rows) +
                                ", vocab " + std::to_string(vocab) + "; rows in [1, 2^31), vocab at least 1)");
}

// f(T*, std::integral_constant<int, V>): the widest vector every row start allows.
template <typename T, typename F>
void with_vector(const void* logits, long long vocab, F&& f) {
  constexpr int kWide = 16 / sizeof(T);
  const bool aligned = reinterpret_cast<unsigned long long>(logits) % 16 == 0 && vocab % kWide == 0;
  if (aligned) {
    f(static_cast<T*>(nullptr), std::integral_constant<int, kWide>{});
  } else {
    f(static_cast<T*>(nullptr), std::integral_constant<int, 1>{});
  }
}

template <typename F>
void with_element(LogitElement element, const void* logits, long long vocab, F&& f) {
  switch (element) {
    case LogitElement::f32: with_vector<float>(logits, vocab, f); break;
    case LogitElement::bf16: with_vector<__nv_bfloat16>(logits, vocab, f); break;
    case LogitElement::fp16: with_vector<__half>(logits, vocab, f); break;
  }
}

}  // namespace

void cross_entropy_rows_forward(LogitElement element, const void* logits, long long rows, long long vocab,
                                const long long* targets, float* lse, float* picked, void* stream) {
  check_shape(rows, vocab, "cross_entropy_rows_forward");
  with_element(element, logits, vocab, [&](auto* type, auto vector) {
    using T = std::remove_pointer_t<decltype(type)>;
    cross_entropy_rows_forward_kernel<T, decltype(vector)::value>
        <<<static_cast<unsigned>(rows), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
            static_cast<const T*>(logits), vocab, targets, lse, picked);
  });
  check_cuda(cudaGetLastError(), "cross_entropy_rows_forward");
}

void cross_entropy_rows_backward(LogitElement element, void* logits, long long rows, long long vocab,
                                 const long long* targets, const float* lse, const float* scale, void* stream) {
  check_shape(rows, vocab, "cross_entropy_rows_backward");
  with_element(element, logits, vocab, [&](auto* type, auto vector) {
    using T = std::remove_pointer_t<decltype(type)>;
    cross_entropy_rows_backward_kernel<T, decltype(vector)::value>
        <<<static_cast<unsigned>(rows), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
            static_cast<T*>(logits), vocab, targets, lse, scale);
  });
  check_cuda(cudaGetLastError(), "cross_entropy_rows_backward");
}

}  // namespace mixlab::cuda::detail
