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

#include "attention/cuda/sm90/available.h"
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

#if MIXLAB_SM90A
using tiles::quad_max;
using tiles::quad_sum;
#endif

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
  float acc[32], m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.f, 0.f};
#pragma unroll
  for (int i = 0; i < 32; ++i) acc[i] = 0.f;
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

    float s[32];
    const uint64_t k_desc = descriptor_k_major(sm.k[stage]);
    fence();
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) mma_ss<0, 0>(s, advance(q_desc, 32 * kk), advance(k_desc, 32 * kk), kk > 0);
    commit();
    wait<0>();
    fence_registers(s);

    // Scale, and mask where the tile crosses the diagonal, the window's far edge or N.
    const bool edge = n0 + kBlockN - 1 > wg_lo || n0 <= wg_hi - window || n0 + kBlockN > n;
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      const int col = n0 + 8 * (i / 4) + 2 * (lane % 4) + (i & 1), row = row0 + ((i & 2) ? 8 : 0);
      const bool visible = !edge || (col <= row && col > row - window && col < n);
      s[i] = visible ? s[i] * scale_log2 : -INFINITY;
    }
    // Online softmax for the thread's two rows (the quad of lanes sharing them reduces together).
    float alpha[2], base[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float mx = -INFINITY;
#pragma unroll
      for (int jj = 0; jj < 8; ++jj) mx = fmaxf(mx, fmaxf(s[4 * jj + 2 * h], s[4 * jj + 2 * h + 1]));
      const float m_new = fmaxf(m_run[h], quad_max(mx));
      base[h] = m_new == -INFINITY ? 0.f : m_new;  // a row with nothing visible yet
      alpha[h] = exp2f(m_run[h] - base[h]);
      m_run[h] = m_new;
    }
    float row_sum[2] = {0.f, 0.f};
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      const int h = (i >> 1) & 1;
      s[i] = exp2f(s[i] - base[h]);
      row_sum[h] += s[i];
      acc[i] *= alpha[h];  // acc has the same row mapping (n = d here)
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) l_run[h] = l_run[h] * alpha[h] + row_sum[h];  // per-thread partial sums

    // O += P V: P's k16 step kk = keys n0 + 16kk .. + 15 = 16 rows of V further in.
    uint32_t a[4][4];
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) accumulator_to_a(s, kk, a[kk]);
    const uint64_t v_desc = descriptor_mn_major(sm.v[stage]);
    fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) mma_rs<1>(acc, a[kk], advance(v_desc, 16 * kRowBytes * kk), 1);
    commit();
    wait<0>();
    fence_registers(acc);
  }

  // o = O / l;  lse = (m + log2 l) ln 2.
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = row0 + 8 * h;
    const float l = quad_sum(l_run[h]);
    if (row >= n) continue;
    const float inv = 1.f / l;
#pragma unroll
    for (int jj = 0; jj < 8; ++jj) {
      const int col = 8 * jj + 2 * (lane % 4);
      *reinterpret_cast<__nv_bfloat162*>(o + static_cast<size_t>(row) * kD + col) =
          __floats2bfloat162_rn(acc[4 * jj + 2 * h] * inv, acc[4 * jj + 2 * h + 1] * inv);
    }
    if (lane % 4 == 0) lse[row] = (m_run[h] + log2f(l)) * 0.6931471805599453f;
  }
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
  if (!available())
    throw std::invalid_argument("attention/cuda/sm90/window_forward: needs a compute-capability 9.x GPU (Hopper) and a "
                                "build for sm_90a (CMAKE_CUDA_ARCHITECTURES=90a)");
  const size_t smem = sizeof(Smem) + 1024;  // + room to align the tiles to 1,024 bytes
  cudaFuncSetAttribute(window_forward_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  const dim3 grid((shape.n + kBlockM - 1) / kBlockM, shape.batch_heads);
  window_forward_kernel<<<grid, kThreads, smem, static_cast<cudaStream_t>(stream)>>>(
      shape, static_cast<const __nv_bfloat16*>(q), static_cast<const __nv_bfloat16*>(k),
      static_cast<const __nv_bfloat16*>(v), static_cast<__nv_bfloat16*>(o), lse);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("attention/cuda/sm90/window_forward: launch: ") + cudaGetErrorString(err));
}

}  // namespace mixlab::cuda::sm90
