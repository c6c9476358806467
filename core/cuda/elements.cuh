#pragma once
// Device helpers shared by the kernels of attention/cuda and mixers/cuda: loading an element of
// any of the kernels' types (float, bf16, fp16) as float and storing a float back (round to
// nearest even), V consecutive elements as one vector load or store, and pointwise functions as
// torch defines them.

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace mixlab::cuda::detail {

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
__device__ __forceinline__ void store_f(float* p, float x) { *p = x; }
__device__ __forceinline__ void store_f(__nv_bfloat16* p, float x) { *p = __float2bfloat16_rn(x); }
__device__ __forceinline__ void store_f(__half* p, float x) { *p = __float2half_rn(x); }

// V consecutive elements, loaded or stored as one vector of at most 16 bytes (a pointer aligned
// to min(16, sizeof(T)·V) bytes).
template <typename T, int V>
struct alignas(sizeof(T) * V > 16 ? 16 : sizeof(T) * V) Pack {
  T v[V];
};

template <typename T, int V>
__device__ __forceinline__ void load_pack(const T* p, float (&out)[V]) {
  const Pack<T, V> pack = *reinterpret_cast<const Pack<T, V>*>(p);
#pragma unroll
  for (int e = 0; e < V; ++e) out[e] = to_f(pack.v[e]);
}

template <typename T, int V>
__device__ __forceinline__ void store_pack(T* p, const float (&in)[V]) {
  Pack<T, V> pack;
#pragma unroll
  for (int e = 0; e < V; ++e) store_f(&pack.v[e], in[e]);
  *reinterpret_cast<Pack<T, V>*>(p) = pack;
}

// torch.nn.functional.softplus with its default threshold 20.
__device__ __forceinline__ float softplus(float x) { return x > 20.f ? x : log1pf(__expf(x)); }
__device__ __forceinline__ float sigmoid(float x) { return 1.f / (1.f + __expf(-x)); }

}  // namespace mixlab::cuda::detail
