#pragma once
// Device helpers shared by the mixers' kernels (selective_scan.cu, decode_step.cu): loading an
// activation of any of the kernels' element types as float, storing a float back, and the
// pointwise functions both need, as torch defines them.

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace mixlab::cuda::detail {

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
__device__ __forceinline__ void store_f(float* p, float x) { *p = x; }
__device__ __forceinline__ void store_f(__nv_bfloat16* p, float x) { *p = __float2bfloat16_rn(x); }
__device__ __forceinline__ void store_f(__half* p, float x) { *p = __float2half_rn(x); }

// torch.nn.functional.softplus with its default threshold 20.
__device__ __forceinline__ float softplus(float x) { return x > 20.f ? x : log1pf(__expf(x)); }
__device__ __forceinline__ float sigmoid(float x) { return 1.f / (1.f + __expf(-x)); }

}  // namespace mixlab::cuda::detail
