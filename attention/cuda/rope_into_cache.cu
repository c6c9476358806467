// The decode step's fused RoPE and cache write (attention/cuda/rope_into_cache_launch.h): one
// kernel where the composed step runs five (two index_select of the table rows, RoPE on q and k,
// and an index_copy_ each for k and v).
//
// One thread per V consecutive pairs (x1[i..i+V), x2[i..i+V)) of one (b, h): it loads those 2V
// elements of q, k and v and of the table row at t, writes 2V elements of q_out, of key slot m and
// of value slot m.  t and m are read on the device.  V = 16 bytes / element size (8 for bf16 /
// fp16, 4 for float32) where d_h/2, the strides and the pointers allow it, else 1.
//
// Arithmetic as rope.cu: float32 with explicitly rounded products and sums (__fmul_rn, __fadd_rn,
// never fused into an FMA), so float32 gives the composed form's result bit for bit; bf16 / fp16
// round once.  v passes through float32 unchanged (every bf16 / fp16 value is a float32).

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "attention/cuda/rope_into_cache_launch.h"
#include "core/cuda/dependent_launch.cuh"
#include "core/cuda/elements.cuh"

namespace mixlab::cuda::detail {
namespace {

constexpr int kThreads = 128;

// y1 = x1·c1 − x2·s1,  y2 = x2·c2 + x1·s2 over V pairs.
template <int V>
__device__ __forceinline__ void rotate(const float (&x1)[V], const float (&x2)[V], const float (&c1)[V],
                                       const float (&c2)[V], const float (&s1)[V], const float (&s2)[V],
                                       float (&y1)[V], float (&y2)[V]) {
#pragma unroll
  for (int e = 0; e < V; ++e) {
    y1[e] = __fsub_rn(__fmul_rn(x1[e], c1[e]), __fmul_rn(x2[e], s1[e]));
    y2[e] = __fadd_rn(__fmul_rn(x2[e], c2[e]), __fmul_rn(x1[e], s2[e]));
  }
}

// Loads the pairs [i, i + V) of the row at x (halves `half` apart), rotates them and stores them at y.
template <typename T, int V>
__device__ __forceinline__ void rotate_row(const T* x, T* y, unsigned half, const float (&c1)[V],
                                           const float (&c2)[V], const float (&s1)[V], const float (&s2)[V]) {
  float x1[V], x2[V], y1[V], y2[V];
  load_pack<T, V>(x, x1);
  load_pack<T, V>(x + half, x2);
  rotate<V>(x1, x2, c1, c2, s1, s2, y1, y2);
  store_pack<T, V>(y, y1);
  store_pack<T, V>(y + half, y2);
}

// Copies the pairs [i, i + V) of the row at x to y.
template <typename T, int V>
__device__ __forceinline__ void copy_row(const T* x, T* y, unsigned half) {
  float x1[V], x2[V];
  load_pack<T, V>(x, x1);
  load_pack<T, V>(x + half, x2);
  store_pack<T, V>(y, x1);
  store_pack<T, V>(y + half, x2);
}

// Thread index: pairs [i, i + V) of (b, h), i = V·(index mod G), G = d_h / (2V), (b, h) = index div G
// with h fastest.
template <typename T, int V>
__global__ void __launch_bounds__(kThreads)
    rope_into_cache_kernel(RopeIntoCacheShape s, const T* __restrict__ qkv, const int64_t* __restrict__ position,
                           const T* __restrict__ cos, const T* __restrict__ sin, const int64_t* __restrict__ slot,
                           T* __restrict__ q_out, T* __restrict__ keys, T* __restrict__ values) {
  const unsigned half = s.head_dim / 2, groups = half / V;
  const unsigned total = static_cast<unsigned>(s.batch) * s.heads * groups;  // < 2^31 (rope_into_cache())
  const unsigned index = blockIdx.x * kThreads + threadIdx.x;
  wait_for_prerequisites();  // the position, the slot and qkv are earlier kernels' (core/cuda/dependent_launch.cuh)
  let_dependents_launch();
  if (index >= total) return;
  const long long t = *position, m = *slot;
  if (t < 0 || t >= s.capacity || m < 0 || m >= s.slots) __trap();
  const unsigned bh = index / groups, i = index % groups * V, h = bh % s.heads, b = bh / s.heads;
  const long long table_row = t * s.head_dim + i;
  float c1[V], c2[V], s1[V], s2[V];
  load_pack<T, V>(cos + table_row, c1);
  load_pack<T, V>(cos + table_row + half, c2);
  load_pack<T, V>(sin + table_row, s1);
  load_pack<T, V>(sin + table_row + half, s2);
  const T* q = qkv + b * s.qkv_stride[0] + h * s.qkv_stride[2] + i;
  rotate_row<T, V>(q, q_out + static_cast<long long>(bh) * s.head_dim + i, half, c1, c2, s1, s2);
  rotate_row<T, V>(q + s.qkv_stride[1], keys + b * s.key_stride[0] + h * s.key_stride[1] + m * s.key_stride[2] + i,
                   half, c1, c2, s1, s2);
  copy_row<T, V>(q + 2 * s.qkv_stride[1],
                 values + b * s.value_stride[0] + h * s.value_stride[1] + m * s.value_stride[2] + i, half);
}

bool aligned(const void* p) { return reinterpret_cast<unsigned long long>(p) % 16 == 0; }

// Whether V = 16 / sizeof(T) serves this call: d_h/2, every stride and every pointer on a 16-byte
// vector boundary.
template <typename T>
bool vectorisable(const RopeIntoCacheShape& s, const void* const (&pointers)[6]) {
  constexpr int V = 16 / sizeof(T);
  if ((s.head_dim / 2) % V != 0) return false;
  for (int d = 0; d < 3; ++d)
    if (s.qkv_stride[d] % V != 0 || s.key_stride[d] % V != 0 || s.value_stride[d] % V != 0) return false;
  for (const void* p : pointers)
    if (!aligned(p)) return false;
  return true;
}

template <typename T>
void launch(const RopeIntoCacheShape& s, const void* qkv, const int64_t* position, const void* cos, const void* sin,
            const int64_t* slot, void* q_out, void* keys, void* values, cudaStream_t stream) {
  constexpr int kWide = 16 / sizeof(T);
  const bool wide = vectorisable<T>(s, {qkv, cos, sin, q_out, keys, values});
  const long long threads = static_cast<long long>(s.batch) * s.heads * (s.head_dim / 2) / (wide ? kWide : 1);
  const unsigned blocks = static_cast<unsigned>((threads + kThreads - 1) / kThreads);
  const auto* x = static_cast<const T*>(qkv);
  const auto *c = static_cast<const T*>(cos), *sn = static_cast<const T*>(sin);
  auto *q = static_cast<T*>(q_out), *k = static_cast<T*>(keys), *v = static_cast<T*>(values);
  if (wide)
    launch_dependent("rope_into_cache", rope_into_cache_kernel<T, kWide>, dim3(blocks), dim3(kThreads), 0, stream, s,
                     x, position, c, sn, slot, q, k, v);
  else
    launch_dependent("rope_into_cache", rope_into_cache_kernel<T, 1>, dim3(blocks), dim3(kThreads), 0, stream, s, x,
                     position, c, sn, slot, q, k, v);
}

}  // namespace

void rope_into_cache(const RopeIntoCacheShape& shape, const void* qkv, const int64_t* position, const void* cos,
                     const void* sin, const int64_t* slot, void* q_out, void* keys, void* values, void* stream) {
  const long long pairs = static_cast<long long>(shape.batch) * shape.heads * (shape.head_dim / 2);
  if (shape.head_dim < 2 || shape.head_dim % 2 != 0 || shape.batch < 1 || shape.heads < 1 || shape.capacity < 1 ||
      shape.slots < 1 || pairs >= (1LL << 31))
    throw std::invalid_argument("rope_into_cache: unsupported shape (B " + std::to_string(shape.batch) + ", H " +
                                std::to_string(shape.heads) + ", d_h " + std::to_string(shape.head_dim) +
                                ", capacity " + std::to_string(shape.capacity) + ", slots " +
                                std::to_string(shape.slots) + ")");
  const auto st = static_cast<cudaStream_t>(stream);
  switch (shape.element) {
    case RopeElement::f32: launch<float>(shape, qkv, position, cos, sin, slot, q_out, keys, values, st); break;
    case RopeElement::bf16: launch<__nv_bfloat16>(shape, qkv, position, cos, sin, slot, q_out, keys, values, st); break;
    case RopeElement::fp16: launch<__half>(shape, qkv, position, cos, sin, slot, q_out, keys, values, st); break;
  }
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) throw std::runtime_error(std::string("rope_into_cache: ") + cudaGetErrorString(status));
}

}  // namespace mixlab::cuda::detail
