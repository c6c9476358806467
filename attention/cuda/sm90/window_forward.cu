// The kernel of window_forward.h.  Per block: 128 query rows [m0, m0 + 128) of one (b, h), two
// consumer warpgroups of 64 rows and one producer warpgroup that streams the block's key/value tiles
// (128 keys each) through a ring of shared-memory stages (key_pipeline.cuh); per thread two rows
// (r, r + 8) and, in each accumulator, a quarter of the columns (wgmma.cuh, "Accumulator layout").
// Scores live in the log2 domain:
//   s = q·k · scale · log2(e),  m = running max,  l = Σ 2^(s − m),  O = Σ 2^(s − m) v,
// and at the end o = O / l, lse = (m + log2 l) · ln 2.  The loop: attend_band (online_softmax.cuh).

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "attention/cuda/sm90/key_pipeline.cuh"
#include "attention/cuda/sm90/launch.cuh"
#include "attention/cuda/sm90/online_softmax.cuh"
#include "attention/cuda/sm90/tile_loads.cuh"
#include "attention/cuda/sm90/wgmma.cuh"
#include "attention/cuda/sm90/window_forward.h"

namespace mixlab::cuda::sm90 {
namespace {

constexpr int kBlockM = 128;    // query rows per block: two warpgroups
constexpr int kKeys = 128;      // key rows per tile
static_assert(kBlockM == 16 * kConsumerWarps, "a consumer warpgroup per 64 query rows");

// D: the head dim, 64 or 128 (D / 64 swizzled column blocks per tile row).
template <int D>
struct alignas(1024) Smem {
  KeyValueStages<kForwardStages<D>, kKeys, D> kv;
  unsigned char q[kBlockM * D * 2];  // two K-major [64 x D] tiles, one per warpgroup
};

#if MIXLAB_SM90A
// Tile i of the block's sequence is keys [key0, key0 + 128), key0 = (first + i) · 128.  Row t sees
// key j when t − W < j ≤ t and j < N: an interval.
struct WindowMask {
  int n, window, first, row0, wg_lo, wg_hi;  // wg_lo, wg_hi: the warpgroup's first and last row
  // Some row of the warpgroup does not see the whole tile: it crosses the diagonal, the window's
  // far edge or N.
  __device__ bool edge(int i) const {
    const int key0 = (first + i) * kKeys;
    return key0 + kKeys - 1 > wg_lo || key0 <= wg_hi - window || key0 + kKeys > n;
  }
  // Keys max(0, t − W + 1) .. min(t, N − 1) of row t = row0 + 8h, as columns of tile i.
  __device__ void columns(int i, int h, int& lo, int& hi) const {
    const int key0 = (first + i) * kKeys, row = row0 + 8 * h;
    lo = max(row - window + 1, key0) - key0;
    hi = min(row, n - 1) + 1 - key0;
  }
};
#endif

// grid (⌈N / 128⌉, B·H), kForwardThreads (384), sizeof(Smem<D>) + 1,024 bytes of dynamic shared memory.
template <int D>
__global__ void __launch_bounds__(kForwardThreads, 1) window_forward_kernel(WindowForwardShape shape,
                                                                            const __nv_bfloat16* __restrict__ q,
                                                                            const __nv_bfloat16* __restrict__ k,
                                                                            const __nv_bfloat16* __restrict__ v,
                                                                            __nv_bfloat16* __restrict__ o,
                                                                            float* __restrict__ lse) {
#if MIXLAB_SM90A
  extern __shared__ unsigned char smem_raw[];
  auto& sm = aligned_shared<Smem<D>>(smem_raw);
  const int n = shape.n, window = shape.window;
  const int m0 = blockIdx.x * kBlockM;
  const size_t head = static_cast<size_t>(blockIdx.y) * n * D;
  q += head; k += head; v += head; o += head;
  lse += static_cast<size_t>(blockIdx.y) * n;
  // Key tiles any row of the block sees: keys [max(0, m0 − W + 1), min(N, m0 + 128)).
  const int first = max(0, m0 - window + 1) / kKeys, last = (min(n, m0 + kBlockM) - 1) / kKeys;
  const int tiles = last - first + 1;

  if (threadIdx.x == 0) init_stages(sm.kv);
  __syncthreads();  // the barriers are initialised (the last block-wide barrier: the roles part here)

  if (threadIdx.x >= kProducerThread0) {
    forward_producer_registers<D>();
    produce(sm.kv, tiles, [&](int i, KeyValueSlot<kKeys, D>& slot, int thread) {
      const int key0 = (first + i) * kKeys;
      load_wide_tile_warpgroup<kKeys, D>(thread, slot.k, k + static_cast<size_t>(key0) * D, n - key0, D);
      load_wide_tile_warpgroup<kKeys, D>(thread, slot.v, v + static_cast<size_t>(key0) * D, n - key0, D);
    });
    return;
  }
  forward_consumer_registers<D>();

  const int wg = threadIdx.x / 128, lane = threadIdx.x % 32, warp = (threadIdx.x % 128) / 32;
  const int wg_lo = m0 + 64 * wg, wg_hi = wg_lo + 63;  // this warpgroup's rows
  const int row0 = wg_lo + 16 * warp + lane / 4;       // this thread's rows: row0, row0 + 8
  unsigned char* q_tile = sm.q + 64 * wg * D * 2;
  load_query_tile<D>(wg, q_tile, q, wg_lo, n);

  // The warpgroup's band: the tiles holding keys (wg_lo − W, min(wg_hi, N − 1)]; none when its
  // rows all lie at or past N (nothing of theirs is stored).
  auto band_begin = [&](int lo) { return max(0, lo - window + 1) / kKeys - first; };
  auto band_end = [&](int lo) { return lo < n ? min(lo + 63, n - 1) / kKeys - first + 1 : 0; };
  const int begin = band_begin(wg_lo), end = band_end(wg_lo);
  // Ping-pong (key_pipeline.cuh's WarpgroupTurns) where both warpgroups walk the same band: every
  // block but those at N's end when W is a multiple of 128.
  const bool same_bands = band_begin(m0) == band_begin(m0 + 64) && band_end(m0) == band_end(m0 + 64) &&
                          band_begin(m0) < min(band_end(m0), tiles);
  OnlineSoftmax<kKeys, D> softmax;
  softmax.clear();
  attend_band(softmax, sm.kv, descriptor_k_major(q_tile), begin, end, tiles, shape.scale * 1.4426950408889634f,
              WindowMask{n, window, first, row0, wg_lo, wg_hi}, WarpgroupTurns{same_bands, wg});
  softmax.store(row0, n, o, lse);
#else
  __trap();  // built without sm_90a: window_forward() refuses to launch
#endif
}

}  // namespace

void window_forward(const WindowForwardShape& shape, const void* q, const void* k, const void* v, void* o, float* lse,
                    void* stream) {
  if (shape.batch_heads < 1 || shape.n < 1 || shape.window < 1 || (shape.head_dim != 64 && shape.head_dim != 128))
    throw std::invalid_argument("attention/cuda/sm90/window_forward: needs B·H, N, W ≥ 1 and head dim 64 or 128 (got " +
                                std::to_string(shape.batch_heads) + ", " + std::to_string(shape.n) + ", " +
                                std::to_string(shape.window) + ", " + std::to_string(shape.head_dim) + ")");
  const dim3 grid((shape.n + kBlockM - 1) / kBlockM, shape.batch_heads);
  auto run = [&](auto kernel, size_t smem_bytes) {
    launch("window_forward", kernel, grid, kForwardThreads, smem_bytes + 1024, stream,  // + room to align to 1,024
           shape, static_cast<const __nv_bfloat16*>(q), static_cast<const __nv_bfloat16*>(k),
           static_cast<const __nv_bfloat16*>(v), static_cast<__nv_bfloat16*>(o), lse);
  };
  if (shape.head_dim == 64)
    run(window_forward_kernel<64>, sizeof(Smem<64>));
  else
    run(window_forward_kernel<128>, sizeof(Smem<128>));
}

}  // namespace mixlab::cuda::sm90
