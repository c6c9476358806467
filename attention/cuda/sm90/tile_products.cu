// The tile of tile_products.h: stage Q, K, V into swizzled shared-memory tiles, S = Q Kᵀ by four
// k16 products from shared memory, then O = bf16(S) V by four products whose A operand is S's
// accumulator registers, and R = Qᵀ K with both tiles read MN-major.  Layouts and descriptors:
// wgmma.cuh.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "attention/cuda/sm90/tile_products.h"
#include "attention/cuda/sm90/available.h"
#include "attention/cuda/sm90/wgmma.cuh"

namespace mixlab::cuda::sm90 {
namespace {

#if MIXLAB_SM90A
constexpr int kRows = 64;
constexpr int kTileBytes = kRows * 128;

// This thread's accumulator entries of an m64n64 product, written to a row-major [64 x 64] matrix.
__device__ void store_accumulator(const float (&d)[32], float* out) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = 16 * warp + lane / 4;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int col = 8 * j + 2 * (lane % 4);
    out[row * 64 + col] = d[4 * j];
    out[row * 64 + col + 1] = d[4 * j + 1];
    out[(row + 8) * 64 + col] = d[4 * j + 2];
    out[(row + 8) * 64 + col + 1] = d[4 * j + 3];
  }
}
#endif

__global__ void __launch_bounds__(128) tile_products_kernel(const __nv_bfloat16* __restrict__ q,
                                                            const __nv_bfloat16* __restrict__ k,
                                                            const __nv_bfloat16* __restrict__ v, float* __restrict__ s,
                                                            float* __restrict__ o, float* __restrict__ r) {
#if MIXLAB_SM90A
  __shared__ __align__(1024) unsigned char tiles[3 * kTileBytes];  // Q, K (K-major), V (MN-major)
  for (int i = threadIdx.x; i < kRows * kTileCols; i += blockDim.x) {
    const int r = i / kTileCols, c = i % kTileCols;
    const uint32_t at = swizzled_offset(r, c);
    *reinterpret_cast<__nv_bfloat16*>(tiles + at) = q[i];
    *reinterpret_cast<__nv_bfloat16*>(tiles + kTileBytes + at) = k[i];
    *reinterpret_cast<__nv_bfloat16*>(tiles + 2 * kTileBytes + at) = v[i];
  }
  fence_shared_to_async();
  __syncthreads();

  // S = Q Kᵀ: k16 step kk reads columns 16kk .. 16kk+15 of both rows, 32 bytes further along them.
  float scores[32];
  const uint64_t q_desc = descriptor_k_major(tiles), k_desc = descriptor_k_major(tiles + kTileBytes);
  fence();
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) mma_ss<0, 0>(scores, advance(q_desc, 32 * kk), advance(k_desc, 32 * kk), kk > 0);
  commit();
  wait<0>();
  fence_registers(scores);
  store_accumulator(scores, s);

  // O = bf16(S) V: step kk takes keys 16kk .. 16kk+15, i.e. 16 rows (2,048 bytes) further into V.
  uint32_t a[4][4];
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) accumulator_to_a(scores, kk, a[kk]);
  float out[32];
  const uint64_t v_desc = descriptor_mn_major(tiles + 2 * kTileBytes);
  fence();
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) mma_rs<1>(out, a[kk], advance(v_desc, 16 * 128 * kk), kk > 0);
  commit();
  wait<0>();
  fence_registers(out);
  store_accumulator(out, o);

  // R = Qᵀ K: m = Q's columns, n = K's columns, k = the 64 rows, 16 rows (2,048 bytes) per step.
  float cross[32];
  const uint64_t q_t = descriptor_mn_major(tiles), k_t = descriptor_mn_major(tiles + kTileBytes);
  fence();
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) mma_ss<1, 1>(cross, advance(q_t, 16 * 128 * kk), advance(k_t, 16 * 128 * kk), kk > 0);
  commit();
  wait<0>();
  fence_registers(cross);
  store_accumulator(cross, r);
#else
  __trap();  // built without sm_90a: tile_products() refuses to launch
#endif
}

}  // namespace

void tile_products(const void* q, const void* k, const void* v, float* s, float* o, float* r, void* stream) {
  if (!available())
    throw std::invalid_argument("attention/cuda/sm90/tile_products: needs a compute-capability 9.x GPU (Hopper) and a "
                                "build for sm_90a (CMAKE_CUDA_ARCHITECTURES=90a)");
  tile_products_kernel<<<1, 128, 0, static_cast<cudaStream_t>(stream)>>>(
      static_cast<const __nv_bfloat16*>(q), static_cast<const __nv_bfloat16*>(k),
      static_cast<const __nv_bfloat16*>(v), s, o, r);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("attention/cuda/sm90/tile_products: launch: ") + cudaGetErrorString(err));
}

}  // namespace mixlab::cuda::sm90
