// The kernel of checkpoint_forward.h.  Per block: 128 query rows [m0, m0 + 128) of one (b, h), two
// consumer warpgroups of 64 and one producer warpgroup that gathers the checkpoint key/value tiles (128
// checkpoints each) into a ring of shared-memory stages (key_pipeline.cuh); per thread two rows
// (r, r + 8).  Checkpoint c (the token cS + S − 1) is visible to row t when c < ⌊t / S⌋.  The loop:
// attend_band (online_softmax.cuh).

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "attention/cuda/sm90/checkpoint_forward.h"
#include "attention/cuda/sm90/key_pipeline.cuh"
#include "attention/cuda/sm90/launch.cuh"
#include "attention/cuda/sm90/online_softmax.cuh"
#include "attention/cuda/sm90/tile_loads.cuh"
#include "attention/cuda/sm90/wgmma.cuh"

namespace mixlab::cuda::sm90 {
namespace {

constexpr int kBlockM = 128;    // query rows per block: two warpgroups
constexpr int kKeys = 128;      // checkpoints per tile
static_assert(kBlockM == 16 * kConsumerWarps, "a consumer warpgroup per 64 query rows");

// D: the head dim, 64 or 128 (D / 64 swizzled column blocks per tile row).
template <int D>
struct alignas(1024) Smem {
  KeyValueStages<kForwardStages<D>, kKeys, D> kv;  // checkpoint keys and values
  unsigned char q[kBlockM * D * 2];                // the block's queries (two K-major [64 x D] tiles)
};

#if MIXLAB_SM90A
// Tile i is checkpoints [128i, 128i + 128).
struct CheckpointMask {
  int first_row_sees;  // checkpoints the warpgroup's first row sees
  int sees[2];         // ... and the thread's rows row0, row0 + 8: ⌊t / S⌋
  // Some row does not see the whole tile (every row sees at least its first row's checkpoints).
  __device__ bool edge(int i) const { return (i + 1) * kKeys > first_row_sees; }
  // Checkpoints 0 .. ⌊t / S⌋ − 1 of row t = row0 + 8h, as columns of tile i.
  __device__ void columns(int i, int h, int& lo, int& hi) const {
    lo = 0;
    hi = sees[h] - i * kKeys;
  }
};

__device__ __forceinline__ float2 bf16_pair(const __nv_bfloat16* p) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
}

// The self term starts each row's softmax: m = q_t·k_t (log2 domain), l = 1, O = v_t, for the
// thread's rows row0, row0 + 8 (q from the warpgroup's swizzled tile at local rows local0, + 8; k, v
// from global memory, zero past N).  The quad sharing a row splits the D dimensions in four.
template <int D>
__device__ void start_with_self(OnlineSoftmax<kKeys, D>& softmax, const unsigned char* q_tile, int local0, int row0,
                                int n, const __nv_bfloat16* k, const __nv_bfloat16* v, float scale_log2) {
  const int quad = threadIdx.x % 4;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int local = local0 + 8 * h, row = row0 + 8 * h;
    const bool inside = row < n;
    const __nv_bfloat16* k_row = k + static_cast<size_t>(inside ? row : 0) * D;
    const __nv_bfloat16* v_row = v + static_cast<size_t>(inside ? row : 0) * D;
    float dot = 0.f;
#pragma unroll
    for (int d = D / 4 * quad; d < D / 4 * (quad + 1); d += 2) {  // column block d / 64, 8,192 bytes each
      const float2 qq = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(
          q_tile + (d / 64) * 64 * 128 + swizzled_offset(local, d % 64)));
      const float2 kk = inside ? bf16_pair(k_row + d) : make_float2(0.f, 0.f);
      dot += qq.x * kk.x + qq.y * kk.y;
    }
    softmax.m[h] = tiles::quad_sum(dot) * scale_log2;
    softmax.l[h] = quad == 0 ? 1.f : 0.f;  // l is summed over the quad at the end
#pragma unroll
    for (int jj = 0; jj < D / 8; ++jj) {
      const float2 vv = inside ? bf16_pair(v_row + 8 * jj + 2 * quad) : make_float2(0.f, 0.f);
      softmax.acc[4 * jj + 2 * h] = vv.x;
      softmax.acc[4 * jj + 2 * h + 1] = vv.y;
    }
  }
}
#endif

// grid (⌈N / 128⌉, B·H), kForwardThreads (384), sizeof(Smem<D>) + 1,024 bytes of dynamic shared memory.
template <int D>
__global__ void __launch_bounds__(kForwardThreads, 1) checkpoint_forward_kernel(CheckpointForwardShape shape,
                                                                                const __nv_bfloat16* __restrict__ q,
                                                                                const __nv_bfloat16* __restrict__ k,
                                                                                const __nv_bfloat16* __restrict__ v,
                                                                                __nv_bfloat16* __restrict__ o,
                                                                                float* __restrict__ lse) {
#if MIXLAB_SM90A
  extern __shared__ unsigned char smem_raw[];
  auto& sm = aligned_shared<Smem<D>>(smem_raw);
  const int n = shape.n, segment = shape.segment;
  const int m0 = blockIdx.x * kBlockM;
  const size_t head = static_cast<size_t>(blockIdx.y) * n * D;
  q += head; k += head; v += head; o += head;
  lse += static_cast<size_t>(blockIdx.y) * n;
  // Checkpoints the block's last row sees; they come in tiles of 128.
  const int checkpoints = (min(n, m0 + kBlockM) - 1) / segment, tiles = (checkpoints + kKeys - 1) / kKeys;

  if (threadIdx.x == 0) init_stages(sm.kv);
  __syncthreads();  // the barriers are initialised (the last block-wide barrier: the roles part here)

  if (threadIdx.x >= kProducerThread0) {
    forward_producer_registers<D>();
    // Tile i's rows: token c·S + S − 1 for checkpoints c = 128i .. 128i + 127 (below `checkpoints`).
    produce(sm.kv, tiles, [&](int i, KeyValueSlot<kKeys, D>& slot, int thread) {
      const size_t first_row = (static_cast<size_t>(i) * kKeys * segment + segment - 1) * D;
      const size_t stride = static_cast<size_t>(segment) * D;
      load_wide_tile_warpgroup<kKeys, D>(thread, slot.k, k + first_row, checkpoints - i * kKeys, stride);
      load_wide_tile_warpgroup<kKeys, D>(thread, slot.v, v + first_row, checkpoints - i * kKeys, stride);
    });
    return;
  }
  forward_consumer_registers<D>();

  const int wg = threadIdx.x / 128, lane = threadIdx.x % 32, warp = (threadIdx.x % 128) / 32;
  const int wg_lo = m0 + 64 * wg, wg_hi = min(wg_lo + 63, n - 1);  // this warpgroup's rows (below N)
  const int local0 = 16 * warp + lane / 4, row0 = wg_lo + local0;  // rows row0, row0 + 8
  unsigned char* q_tile = sm.q + 64 * wg * D * 2;
  load_query_tile<D>(wg, q_tile, q, wg_lo, n);

  const float scale_log2 = shape.scale * 1.4426950408889634f;
  OnlineSoftmax<kKeys, D> softmax;
  start_with_self(softmax, q_tile, local0, row0, n, k, v, scale_log2);
  // The warpgroup's band: the tiles holding the checkpoints its last row sees (none for rows past N).
  const int wg_sees = wg_lo < n ? wg_hi / segment : 0;
  attend_band(softmax, sm.kv, descriptor_k_major(q_tile), 0, (wg_sees + kKeys - 1) / kKeys, tiles, scale_log2,
              CheckpointMask{wg_lo / segment, {row0 / segment, (row0 + 8) / segment}});
  softmax.store(row0, n, o, lse);
#else
  __trap();  // built without sm_90a: checkpoint_forward() refuses to launch
#endif
}

}  // namespace

void checkpoint_forward(const CheckpointForwardShape& shape, const void* q, const void* k, const void* v, void* o,
                        float* lse, void* stream) {
  if (shape.batch_heads < 1 || shape.n < 1 || shape.segment < 1 || (shape.head_dim != 64 && shape.head_dim != 128))
    throw std::invalid_argument("attention/cuda/sm90/checkpoint_forward: needs B·H, N, S ≥ 1 and head dim 64 or 128 "
                                "(got " + std::to_string(shape.batch_heads) + ", " + std::to_string(shape.n) + ", " +
                                std::to_string(shape.segment) + ", " + std::to_string(shape.head_dim) + ")");
  const dim3 grid((shape.n + kBlockM - 1) / kBlockM, shape.batch_heads);
  auto run = [&](auto kernel, size_t smem_bytes) {
    launch("checkpoint_forward", kernel, grid, kForwardThreads, smem_bytes + 1024, stream,  // + room to align to 1,024
           shape, static_cast<const __nv_bfloat16*>(q), static_cast<const __nv_bfloat16*>(k),
           static_cast<const __nv_bfloat16*>(v), static_cast<__nv_bfloat16*>(o), lse);
  };
  if (shape.head_dim == 64)
    run(checkpoint_forward_kernel<64>, sizeof(Smem<64>));
  else
    run(checkpoint_forward_kernel<128>, sizeof(Smem<128>));
}

}  // namespace mixlab::cuda::sm90
