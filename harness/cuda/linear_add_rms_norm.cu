// A decode step's output projection with the residual add and the next RMSNorm as its store
// (harness/linear_add_rms_norm.h; the reference is add_rms_norm(r, skinny_linear(x, W, bias), w)):
//
//   b = bf16(x Wᵀ + bias),   h = bf16(r + b),   y = bf16((h · rsqrt(mean(h²) + eps)) · w)
//
// The product is core/cuda/skinny_linear.cuh's kernel: each block owns 8 or 16 outputs of 16 rows
// and stores h = r + b for them.  The norm needs every output of a row, which a block does not
// hold, so the blocks of one 16-row slice count themselves in as they finish (the classic
// last-block reduction: each thread's stores made visible device-wide by a fence, then one atomic
// per block), and the block that arrives last normalises the slice's rows from h, which it reads
// back from L2.  atomicInc wraps the count to 0 on that last arrival, so the counter is ready for
// the next launch, eager or replayed in a CUDA graph, with no reset kernel.  The norm's arithmetic
// is add_rms_norm_forward_kernel's (add_rms_norm.cu): lane l of a warp holds the row's vectors
// l, l + 32, ... of 8 elements, squares summed per lane and then across the warp.

#include <cuda_bf16.h>

#include "core/cuda/elements.cuh"
#include "core/cuda/skinny_linear.cuh"
#include "harness/cuda/launch.h"

namespace mixlab::cuda::detail {
namespace {

constexpr int kV = kAddNormVector;                      // elements per 16-byte vector
constexpr int kMaxVectorsPerLane = kAddNormMaxCols / (32 * kV);
constexpr int kRowSlices = kSkinnyMaxRows / skinny::kRowsPerBlock;

// Blocks of each 16-row slice that have stored their part of h, in the current launch.  One launch
// at a time per device (launches on one stream are ordered: a launch's blocks count only after
// waiting for the kernel before them, by which time the previous launch has completed).
__device__ unsigned int g_arrivals[kRowSlices];

// 8 bf16 from L2, not from this SM's L1 (other blocks wrote them).
__device__ __forceinline__ void load_vector_from_l2(const __nv_bfloat16* p, float (&out)[kV]) {
  const uint4 raw = __ldcg(reinterpret_cast<const uint4*>(p));
  const auto* pairs = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int i = 0; i < kV / 2; ++i) {
    const float2 f = __bfloat1622float2(pairs[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

struct ResidualNormStore {
  const __nv_bfloat16* bias;         // [out] or null
  const __nv_bfloat16* residual;     // r: [rows, out]
  const __nv_bfloat16* norm_weight;  // w: [out]
  __nv_bfloat16* h;                  // [rows, out]
  __nv_bfloat16* y;                  // [rows, out]
  long long out;
  float eps;

  // h[row, o] = bf16(r + bf16(sum + bias)).
  __device__ void operator()(long long row, long long o, float sum) const {
    if (bias) sum += __bfloat162float(bias[o]);
    const float branch = __bfloat162float(__float2bfloat16(sum));
    const long long at = row * out + o;
    h[at] = __float2bfloat16(__bfloat162float(residual[at]) + branch);
  }

  // Every thread of every block, after the block's stores: the slice's last block normalises it.
  __device__ void finish_block(const SkinnyLinearShape& s) const {
    __shared__ bool last;
    __threadfence();  // this thread's h, visible to the block that normalises
    __syncthreads();
    if (threadIdx.x == 0) last = atomicInc(&g_arrivals[blockIdx.y], gridDim.x - 1) == gridDim.x - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();  // the other blocks' h, seen after their arrivals
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, vectors = static_cast<int>(s.out / kV);
    const float inv_cols = 1.f / static_cast<float>(s.out);
    for (int m = warp; m < skinny::kRowsPerBlock; m += blockDim.x / 32) {
      const long long row = static_cast<long long>(blockIdx.y) * skinny::kRowsPerBlock + m;
      if (row >= s.rows) break;
      float hv[kMaxVectorsPerLane][kV];
      float squares = 0.f;
#pragma unroll
      for (int p = 0; p < kMaxVectorsPerLane; ++p) {
        const int v = lane + 32 * p;
        if (v < vectors) {
          load_vector_from_l2(h + row * s.out + static_cast<long long>(v) * kV, hv[p]);
        } else {
#pragma unroll
          for (int e = 0; e < kV; ++e) hv[p][e] = 0.f;
        }
#pragma unroll
        for (int e = 0; e < kV; ++e) squares += hv[p][e] * hv[p][e];
      }
      const float inv = rsqrtf(warp_sum(squares) * inv_cols + eps);
#pragma unroll
      for (int p = 0; p < kMaxVectorsPerLane; ++p) {
        const int v = lane + 32 * p;
        if (v >= vectors) continue;
        float wv[kV];
        load_pack<__nv_bfloat16, kV>(norm_weight + static_cast<long long>(v) * kV, wv);
#pragma unroll
        for (int e = 0; e < kV; ++e) hv[p][e] = hv[p][e] * inv * wv[e];
        store_pack<__nv_bfloat16, kV>(y + row * s.out + static_cast<long long>(v) * kV, hv[p]);
      }
    }
  }
};

}  // namespace

void linear_add_rms_norm_bf16(const SkinnyLinearShape& shape, const void* x, const void* weight, const void* bias,
                              const void* residual, const void* norm_weight, float eps, void* h, void* y,
                              void* stream) {
  if (shape.out % kV != 0 || shape.out > kAddNormMaxCols)
    throw std::invalid_argument("linear_add_rms_norm: the norm's width (out = " + std::to_string(shape.out) +
                                ") must be a multiple of " + std::to_string(kV) + " up to " +
                                std::to_string(kAddNormMaxCols));
  const ResidualNormStore store{static_cast<const __nv_bfloat16*>(bias), static_cast<const __nv_bfloat16*>(residual),
                                static_cast<const __nv_bfloat16*>(norm_weight), static_cast<__nv_bfloat16*>(h),
                                static_cast<__nv_bfloat16*>(y), shape.out, eps};
  launch_skinny_linear("linear_add_rms_norm", shape, x, weight, store, static_cast<cudaStream_t>(stream));
}

}  // namespace mixlab::cuda::detail
