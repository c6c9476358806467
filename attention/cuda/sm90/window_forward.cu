// The kernel of window_forward.h.  Per block: 128 query rows [m0, m0 + 128) of one (b, h), two
// warpgroups of 64 rows; per thread two rows (r, r + 8) and, in each 64-column accumulator,
// 16 columns (wgmma.cuh, "Accumulator layout").  Scores live in the log2 domain:
//   s = q·k · scale · log2(e),  m = running max,  l = Σ 2^(s − m),  O = Σ 2^(s − m) v,
// and at the end o = O / l, lse = (m + log2 l) · ln 2.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "attention/cuda/sm90/launch.cuh"
#include "attention/cuda/sm90/online_softmax.cuh"
#include "attention/cuda/sm90/tile_loads.cuh"
#include "attention/cuda/sm90/wgmma.cuh"
#include "attention/cuda/sm90/window_forward.h"

namespace mixlab::cuda::sm90 {
namespace {

constexpr int kD = 64;          // head dim: one 128-byte swizzled row
constexpr int kBlockM = 128;    // query rows per block
constexpr int kBlockN = 64;     // key rows per tile
constexpr int kThreads = 256;   // two warpgroups
constexpr int kRowBytes = 128;
static_assert(kD == kTileCols && kBlockN == 64, "one swizzled row per key, m64n64 products");

struct alignas(1024) Smem {
  unsigned char q[kBlockM * kRowBytes];        // two K-major [64 x 64] tiles, one per warpgroup
  unsigned char k[2][kBlockN * kRowBytes];     // K-major (rows = keys)
  unsigned char v[2][kBlockN * kRowBytes];     // MN-major for O += P V (rows = keys = the k dimension)
};


// grid (⌈N / 128⌉, B·H), 256 threads, sizeof(Smem) + 1,024 bytes of dynamic shared memory.
__global__ void __launch_bounds__(kThreads) window_forward_kernel(WindowForwardShape shape,
                                                                  const __nv_bfloat16* __restrict__ q,
                                                                  const __nv_bfloat16* __restrict__ k,
                                                                  const __nv_bfloat16* __restrict__ v,
                                                                  __nv_bfloat16* __restrict__ o, float* __restrict__ lse) {
#if MIXLAB_SM90A
  extern __shared__ unsigned char smem_raw[];
  auto& sm = *reinterpret_cast<Smem*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  const int n = shape.n, window = shape.window;
  const int m0 = blockIdx.x * kBlockM;
  const size_t head = static_cast<size_t>(blockIdx.y) * n * kD;
  q += head; k += head; v += head; o += head;
  lse += static_cast<size_t>(blockIdx.y) * n;

  const int wg = threadIdx.x / 128, lane = threadIdx.x % 32, warp = (threadIdx.x % 128) / 32;
  const int wg_lo = m0 + 64 * wg, wg_hi = wg_lo + 63;  // this warpgroup's rows
  const int row0 = wg_lo + 16 * warp + lane / 4;       // this thread's rows: row0, row0 + 8
  // Key tiles any row of the block sees: keys [max(0, m0 − W + 1), min(N, m0 + 128)).
  const int first = max(0, m0 - window + 1) / kBlockN, last = (min(n, m0 + kBlockM) - 1) / kBlockN;

  load_tile<kThreads>(sm.q, q + static_cast<size_t>(m0) * kD, kBlockM, n - m0);
  load_tile<kThreads>(sm.k[first & 1], k + static_cast<size_t>(first) * kBlockN * kD, kBlockN, n - first * kBlockN);
  load_tile<kThreads>(sm.v[first & 1], v + static_cast<size_t>(first) * kBlockN * kD, kBlockN, n - first * kBlockN);
  cp_async_commit();

  const float scale_log2 = shape.scale * 1.4426950408889634f;
  OnlineSoftmax softmax;
  softmax.clear();
  const uint64_t q_desc = descriptor_k_major(sm.q + 64 * wg * kRowBytes);

  for (int j = first; j <= last; ++j) {
    const int stage = j & 1, n0 = j * kBlockN;
    cp_async_wait_all();
    fence_shared_to_async();
    __syncthreads();  // tile j is in place, and every warp is done with the buffer refilled next
    if (j < last) {
      const int next = n0 + kBlockN;
      load_tile<kThreads>(sm.k[stage ^ 1], k + static_cast<size_t>(next) * kD, kBlockN, n - next);
      load_tile<kThreads>(sm.v[stage ^ 1], v + static_cast<size_t>(next) * kD, kBlockN, n - next);
      cp_async_commit();
    }
    // Keys [n0, n0 + 64) reach this warpgroup's band (t − W < key ≤ t for some of its rows)?
    if (n0 > wg_hi || n0 + kBlockN - 1 <= wg_lo - window) continue;  // uniform per warpgroup

    // Masked only where the tile crosses the diagonal, the window's far edge or N.
    const bool edge = n0 + kBlockN - 1 > wg_lo || n0 <= wg_hi - window || n0 + kBlockN > n;
    softmax.attend(q_desc, sm.k[stage], sm.v[stage], scale_log2, [&](int column, int h) {
      const int key = n0 + column, row = row0 + 8 * h;
      return !edge || (key <= row && key > row - window && key < n);
    });
  }
  softmax.store(row0, n, o, lse);
#else
  __trap();  // built without sm_90a: window_forward() refuses to launch
#endif
}

}  // namespace

void window_forward(const WindowForwardShape& shape, const void* q, const void* k, const void* v, void* o, float* lse,
                    void* stream) {
  if (shape.batch_heads < 1 || shape.n < 1 || shape.window < 1)
    throw std::invalid_argument("attention/cuda/sm90/window_forward: needs B·H, N, W ≥ 1 (got " +
                                std::to_string(shape.batch_heads) + ", " + std::to_string(shape.n) + ", " +
                                std::to_string(shape.window) + ")");
  const dim3 grid((shape.n + kBlockM - 1) / kBlockM, shape.batch_heads);
  const size_t shared_bytes = sizeof(Smem) + 1024;  // + room to align the tiles to 1,024 bytes
  launch("window_forward", window_forward_kernel, grid, kThreads, shared_bytes, stream,
         shape, static_cast<const __nv_bfloat16*>(q), static_cast<const __nv_bfloat16*>(k),
         static_cast<const __nv_bfloat16*>(v), static_cast<__nv_bfloat16*>(o), lse);
}

}  // namespace mixlab::cuda::sm90
