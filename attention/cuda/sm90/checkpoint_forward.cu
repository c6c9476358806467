// The kernel of checkpoint_forward.h.  Per block: 128 query rows [m0, m0 + 128) of one (b, h), two
// warpgroups of 64; per thread two rows (r, r + 8).  Checkpoint c (the token cS + S − 1) is
// visible to row t when c < ⌊t / S⌋.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "attention/cuda/sm90/checkpoint_forward.h"
#include "attention/cuda/sm90/launch.cuh"
#include "attention/cuda/sm90/online_softmax.cuh"
#include "attention/cuda/sm90/tile_loads.cuh"
#include "attention/cuda/sm90/wgmma.cuh"

namespace mixlab::cuda::sm90 {
namespace {

constexpr int kD = 64;          // head dim: one 128-byte swizzled row
constexpr int kBlockM = 128;    // query rows per block
constexpr int kBlockN = 64;     // checkpoints per tile
constexpr int kThreads = 256;   // two warpgroups
constexpr int kRowBytes = 128;
static_assert(kD == kTileCols, "one swizzled row per token");

struct alignas(1024) Smem {
  unsigned char q[kBlockM * kRowBytes];        // the block's queries (two K-major tiles)
  unsigned char self_k[kBlockM * kRowBytes];   // the same rows' keys and values: the self term
  unsigned char self_v[kBlockM * kRowBytes];
  unsigned char k[2][kBlockN * kRowBytes];     // checkpoint keys, K-major
  unsigned char v[2][kBlockN * kRowBytes];     // checkpoint values, MN-major for O += P V
};

#if MIXLAB_SM90A
__device__ __forceinline__ float2 bf16_pair(const unsigned char* tile, int row, int col) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(tile + swizzled_offset(row, col)));
}
#endif

// grid (⌈N / 128⌉, B·H), 256 threads, sizeof(Smem) + 1,024 bytes of dynamic shared memory.
__global__ void __launch_bounds__(kThreads) checkpoint_forward_kernel(CheckpointForwardShape shape,
                                                                      const __nv_bfloat16* __restrict__ q,
                                                                      const __nv_bfloat16* __restrict__ k,
                                                                      const __nv_bfloat16* __restrict__ v,
                                                                      __nv_bfloat16* __restrict__ o,
                                                                      float* __restrict__ lse) {
#if MIXLAB_SM90A
  extern __shared__ unsigned char smem_raw[];
  auto& sm = *reinterpret_cast<Smem*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  const int n = shape.n, segment = shape.segment;
  const int m0 = blockIdx.x * kBlockM;
  const size_t head = static_cast<size_t>(blockIdx.y) * n * kD;
  q += head; k += head; v += head; o += head;
  lse += static_cast<size_t>(blockIdx.y) * n;

  const int wg = threadIdx.x / 128, lane = threadIdx.x % 32, warp = (threadIdx.x % 128) / 32, quad = lane % 4;
  const int wg_lo = m0 + 64 * wg, wg_hi = min(wg_lo + 63, n - 1);  // this warpgroup's rows (below N)
  const int local0 = 64 * wg + 16 * warp + lane / 4, row0 = m0 + local0;  // rows row0, row0 + 8
  // Checkpoints the block's last row sees; they come in tiles of 64.
  const int checkpoints = (min(n, m0 + kBlockM) - 1) / segment, tiles_total = (checkpoints + kBlockN - 1) / kBlockN;
  // A checkpoint tile's rows: token c·S + S − 1 for checkpoints c = 64j .. 64j + 63 (below `checkpoints`).
  auto load_checkpoints = [&](int j, int stage) {
    const size_t first_row = (static_cast<size_t>(j) * kBlockN * segment + segment - 1) * kD;
    const size_t stride = static_cast<size_t>(segment) * kD;
    load_tile<kThreads>(sm.k[stage], k + first_row, kBlockN, checkpoints - j * kBlockN, stride);
    load_tile<kThreads>(sm.v[stage], v + first_row, kBlockN, checkpoints - j * kBlockN, stride);
  };

  load_tile<kThreads>(sm.q, q + static_cast<size_t>(m0) * kD, kBlockM, n - m0);
  load_tile<kThreads>(sm.self_k, k + static_cast<size_t>(m0) * kD, kBlockM, n - m0);
  load_tile<kThreads>(sm.self_v, v + static_cast<size_t>(m0) * kD, kBlockM, n - m0);
  if (tiles_total > 0) load_checkpoints(0, 0);
  cp_async_commit();
  cp_async_wait_all();
  fence_shared_to_async();
  __syncthreads();

  // The self term starts each row's softmax: m = q_t·k_t (log2 domain), l = 1, O = v_t.  The quad
  // sharing a row splits the 64 dimensions in four.
  const float scale_log2 = shape.scale * 1.4426950408889634f;
  OnlineSoftmax softmax;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int local = local0 + 8 * h;
    float dot = 0.f;
#pragma unroll
    for (int d = 16 * quad; d < 16 * quad + 16; d += 2) {
      const float2 qq = bf16_pair(sm.q, local, d), kk = bf16_pair(sm.self_k, local, d);
      dot += qq.x * kk.x + qq.y * kk.y;
    }
    softmax.m[h] = tiles::quad_sum(dot) * scale_log2;
    softmax.l[h] = quad == 0 ? 1.f : 0.f;  // l is summed over the quad at the end
#pragma unroll
    for (int jj = 0; jj < 8; ++jj) {
      const float2 vv = bf16_pair(sm.self_v, local, 8 * jj + 2 * quad);
      softmax.acc[4 * jj + 2 * h] = vv.x;
      softmax.acc[4 * jj + 2 * h + 1] = vv.y;
    }
  }
  // Checkpoints this warpgroup's rows see at most, and what its first row sees (tiles past that
  // are masked per element).
  const int wg_sees = wg_lo < n ? wg_hi / segment : 0, first_row_sees = wg_lo / segment;
  const uint64_t q_desc = descriptor_k_major(sm.q + 64 * wg * kRowBytes);

  for (int j = 0; j < tiles_total; ++j) {
    const int stage = j & 1, c0 = j * kBlockN;
    cp_async_wait_all();
    fence_shared_to_async();
    __syncthreads();  // tile j is in place, and every warp is done with the buffer refilled next
    if (j + 1 < tiles_total) {
      load_checkpoints(j + 1, stage ^ 1);
      cp_async_commit();
    }
    if (c0 >= wg_sees) continue;  // uniform per warpgroup

    // Masked only where some row does not see the whole tile: checkpoint c is visible to row t when
    // c < ⌊t / S⌋.
    const bool edge = c0 + kBlockN > first_row_sees;
    softmax.attend(q_desc, sm.k[stage], sm.v[stage], scale_log2,
                   [&](int column, int h) { return !edge || c0 + column < (row0 + 8 * h) / segment; });
  }
  softmax.store(row0, n, o, lse);
#else
  __trap();  // built without sm_90a: checkpoint_forward() refuses to launch
#endif
}

}  // namespace

void checkpoint_forward(const CheckpointForwardShape& shape, const void* q, const void* k, const void* v, void* o,
                        float* lse, void* stream) {
  if (shape.batch_heads < 1 || shape.n < 1 || shape.segment < 1)
    throw std::invalid_argument("attention/cuda/sm90/checkpoint_forward: needs B·H, N, S ≥ 1 (got " +
                                std::to_string(shape.batch_heads) + ", " + std::to_string(shape.n) + ", " +
                                std::to_string(shape.segment) + ")");
  const dim3 grid((shape.n + kBlockM - 1) / kBlockM, shape.batch_heads);
  const size_t shared_bytes = sizeof(Smem) + 1024;  // + room to align the tiles to 1,024 bytes
  launch("checkpoint_forward", checkpoint_forward_kernel, grid, kThreads, shared_bytes, stream,
         shape, static_cast<const __nv_bfloat16*>(q), static_cast<const __nv_bfloat16*>(k),
         static_cast<const __nv_bfloat16*>(v), static_cast<__nv_bfloat16*>(o), lse);
}

}  // namespace mixlab::cuda::sm90
