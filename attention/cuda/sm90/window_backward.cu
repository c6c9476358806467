// The kernel of window_backward.h.  Per block: keys [k0, k0 + 64) of one (b, h), one warpgroup;
// per thread two key rows (r, r + 8) of the Sᵀ, dPᵀ, dV and dK accumulators and two query rows of
// dQ's (wgmma.cuh, "Accumulator layout").  Per query tile [q0, q0 + 64) that sees these keys:
//   Sᵀ = K Qᵀ, dPᵀ = V dOᵀ                 (shared memory, both K-major)
//   Pᵀ = 2^(Sᵀ·scale·log2 e − lse·log2 e), dSᵀ = Pᵀ ⊙ (dPᵀ − D)    masked to the window
//   dV += Pᵀ dO,  dK += dSᵀ Q               (Pᵀ, dSᵀ from registers; dO, Q read MN-major)
//   dQ  = dS K                              (dSᵀ stored [keys][queries]: A read MN-major; K MN-major)
// and dQ's 64 x 64 float32 partial goes to the accumulator by one bulk reduction.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "attention/cuda/sm90/launch.cuh"
#include "attention/cuda/sm90/tile_loads.cuh"
#include "attention/cuda/sm90/wgmma.cuh"
#include "attention/cuda/sm90/window_backward.h"

namespace mixlab::cuda::sm90 {
namespace {

constexpr int kD = 64;          // head dim: one 128-byte swizzled row
constexpr int kBlock = 64;      // keys per block, queries per tile
constexpr int kThreads = 128;   // one warpgroup
constexpr int kRowBytes = 128;
constexpr int kStep = 16 * kRowBytes;  // a k16 step across the rows of an MN-major tile
static_assert(kD == kTileCols && kStep == 2048, "one swizzled 128-byte row per token");

struct alignas(1024) Smem {
  unsigned char k[kBlock * kRowBytes];          // K-major for Sᵀ = K Qᵀ, MN-major for dQ = dS K
  unsigned char v[kBlock * kRowBytes];          // K-major for dPᵀ = V dOᵀ
  unsigned char q[2][kBlock * kRowBytes];       // K-major for Sᵀ, MN-major for dK += dSᵀ Q
  unsigned char dout[2][kBlock * kRowBytes];    // K-major for dPᵀ, MN-major for dV += Pᵀ dO
  unsigned char ds[kBlock * kRowBytes];         // dSᵀ in bf16, [keys][queries]
  alignas(16) float dq[kBlock * kD];            // dQ's partial, row-major: the bulk reduction's source
  alignas(16) float lse[2][kBlock];
  alignas(16) float delta[2][kBlock];
};

// grid (⌈N / 64⌉, B·H), 128 threads, sizeof(Smem) + 1,024 bytes of dynamic shared memory.
__global__ void __launch_bounds__(kThreads) window_backward_kernel(
    WindowBackwardShape shape, const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
    const __nv_bfloat16* __restrict__ v, const __nv_bfloat16* __restrict__ dout, const float* __restrict__ lse,
    const float* __restrict__ delta, float* __restrict__ dq_accumulator, __nv_bfloat16* __restrict__ dk,
    __nv_bfloat16* __restrict__ dv) {
#if MIXLAB_SM90A
  extern __shared__ unsigned char smem_raw[];
  auto& sm = *reinterpret_cast<Smem*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  const int n = shape.n, window = shape.window;
  const int k0 = blockIdx.x * kBlock;
  const size_t head = static_cast<size_t>(blockIdx.y) * n * kD;
  q += head; k += head; v += head; dout += head; dk += head; dv += head;
  lse += static_cast<size_t>(blockIdx.y) * n;
  delta += static_cast<size_t>(blockIdx.y) * n;
  dq_accumulator += static_cast<size_t>(blockIdx.y) * shape.n_padded * kD;

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int row = 16 * warp + lane / 4;  // this thread's accumulator rows: row, row + 8
  // Query tiles whose rows see a key of this block: queries [k0, min(N, k0 + 64 + W − 1)).
  const int first = k0 / kBlock, last = (min(n, k0 + kBlock + window - 1) - 1) / kBlock;

  auto load_queries = [&](int tile, int stage) {
    const int q0 = tile * kBlock;
    load_tile<kThreads>(sm.q[stage], q + static_cast<size_t>(q0) * kD, kBlock, n - q0);
    load_tile<kThreads>(sm.dout[stage], dout + static_cast<size_t>(q0) * kD, kBlock, n - q0);
    load_floats(sm.lse[stage], lse + q0, kBlock, n - q0);
    load_floats(sm.delta[stage], delta + q0, kBlock, n - q0);
  };
  load_tile<kThreads>(sm.k, k + static_cast<size_t>(k0) * kD, kBlock, n - k0);
  load_tile<kThreads>(sm.v, v + static_cast<size_t>(k0) * kD, kBlock, n - k0);
  load_queries(first, first & 1);
  cp_async_commit();

  constexpr float kLog2e = 1.4426950408889634f;
  const float scale_log2 = shape.scale * kLog2e;
  float dv_acc[32], dk_acc[32];
#pragma unroll
  for (int i = 0; i < 32; ++i) dv_acc[i] = dk_acc[i] = 0.f;

  for (int tile = first; tile <= last; ++tile) {
    const int stage = tile & 1, q0 = tile * kBlock;
    cp_async_wait_all();
    if (threadIdx.x == 0) bulk_wait_read();  // the last tile's dQ partial has left shared memory
    fence_shared_to_async();
    __syncthreads();
    if (tile < last) {
      load_queries(tile + 1, stage ^ 1);
      cp_async_commit();
    }

    // Sᵀ = K Qᵀ and dPᵀ = V dOᵀ (rows: keys, columns: queries).
    float s[32], dp[32];
    fence();
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk)
      mma_ss<0, 0>(s, advance(descriptor_k_major(sm.k), 32 * kk), advance(descriptor_k_major(sm.q[stage]), 32 * kk),
                   kk > 0);
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk)
      mma_ss<0, 0>(dp, advance(descriptor_k_major(sm.v), 32 * kk),
                   advance(descriptor_k_major(sm.dout[stage]), 32 * kk), kk > 0);
    commit();
    wait<0>();
    fence_registers(s);
    fence_registers(dp);

    // Pᵀ and dSᵀ in place, masked where the tile crosses the diagonal, the window's edge or N.
    const bool inside = k0 + kBlock - 1 <= q0 && q0 + kBlock - 1 - window < k0 && q0 + kBlock <= n && k0 + kBlock <= n;
#pragma unroll
    for (int e = 0; e < 32; ++e) {
      const int key = k0 + row + ((e & 2) ? 8 : 0), col = 8 * (e / 4) + 2 * (lane % 4) + (e & 1), t = q0 + col;
      const bool visible = inside || (key <= t && key > t - window && t < n && key < n);
      const float p = visible ? exp2f(s[e] * scale_log2 - sm.lse[stage][col] * kLog2e) : 0.f;
      dp[e] = p * (dp[e] - sm.delta[stage][col]);
      s[e] = p;
    }
    uint32_t a_p[4][4], a_ds[4][4];
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      accumulator_to_a(s, kk, a_p[kk]);
      accumulator_to_a(dp, kk, a_ds[kk]);
    }
    // dSᵀ to shared memory as bf16 [keys][queries], for dQ = dS K.
#pragma unroll
    for (int jj = 0; jj < 8; ++jj)
#pragma unroll
      for (int h = 0; h < 2; ++h)
        *reinterpret_cast<uint32_t*>(sm.ds + swizzled_offset(row + 8 * h, 8 * jj + 2 * (lane % 4))) =
            pack_bf16(dp[4 * jj + 2 * h], dp[4 * jj + 2 * h + 1]);

    // dV += Pᵀ dO and dK += dSᵀ Q (k: the tile's queries, 16 rows of dO / Q per step).
    fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) mma_rs<1>(dv_acc, a_p[kk], advance(descriptor_mn_major(sm.dout[stage]), kStep * kk), 1);
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) mma_rs<1>(dk_acc, a_ds[kk], advance(descriptor_mn_major(sm.q[stage]), kStep * kk), 1);
    commit();

    // dQ = dS K (rows: queries; k: the block's keys, 16 rows of dSᵀ and K per step).
    fence_shared_to_async();
    __syncthreads();  // dSᵀ in place
    float dq[32];
    fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk)
      mma_ss<1, 1>(dq, advance(descriptor_mn_major(sm.ds), kStep * kk), advance(descriptor_mn_major(sm.k), kStep * kk),
                   kk > 0);
    commit();
    wait<0>();
    fence_registers(dq);
    fence_registers(dv_acc);
    fence_registers(dk_acc);

    // dQ's partial through shared memory into the accumulator's rows q0 .. q0 + 63.
#pragma unroll
    for (int jj = 0; jj < 8; ++jj)
#pragma unroll
      for (int h = 0; h < 2; ++h)
        *reinterpret_cast<float2*>(sm.dq + (row + 8 * h) * kD + 8 * jj + 2 * (lane % 4)) =
            make_float2(dq[4 * jj + 2 * h], dq[4 * jj + 2 * h + 1]);
    fence_shared_to_async();
    __syncthreads();
    if (threadIdx.x == 0) bulk_add_f32(dq_accumulator + static_cast<size_t>(q0) * kD, sm.dq, kBlock * kD * sizeof(float));
  }
  if (threadIdx.x == 0) bulk_wait();

  // dV and dK (dK scaled) for the block's keys.
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int key = k0 + row + 8 * h;
    if (key >= n) continue;
#pragma unroll
    for (int jj = 0; jj < 8; ++jj) {
      const size_t at = static_cast<size_t>(key) * kD + 8 * jj + 2 * (lane % 4);
      *reinterpret_cast<__nv_bfloat162*>(dv + at) = __floats2bfloat162_rn(dv_acc[4 * jj + 2 * h], dv_acc[4 * jj + 2 * h + 1]);
      *reinterpret_cast<__nv_bfloat162*>(dk + at) =
          __floats2bfloat162_rn(dk_acc[4 * jj + 2 * h] * shape.scale, dk_acc[4 * jj + 2 * h + 1] * shape.scale);
    }
  }
#else
  __trap();  // built without sm_90a: window_backward() refuses to launch
#endif
}

}  // namespace

void window_backward(const WindowBackwardShape& shape, const void* q, const void* k, const void* v, const void* dout,
                     const float* lse, const float* delta, float* dq_accumulator, void* dk, void* dv, void* stream) {
  if (shape.batch_heads < 1 || shape.n < 1 || shape.window < 1 || shape.n_padded < (shape.n + kBlock - 1) / kBlock * kBlock)
    throw std::invalid_argument("attention/cuda/sm90/window_backward: needs B·H, N, W ≥ 1 and the dQ accumulator's "
                                "rows N rounded up to 64 (got " + std::to_string(shape.batch_heads) + ", " +
                                std::to_string(shape.n) + ", " + std::to_string(shape.window) + ", " +
                                std::to_string(shape.n_padded) + ")");
  const dim3 grid((shape.n + kBlock - 1) / kBlock, shape.batch_heads);
  const size_t shared_bytes = sizeof(Smem) + 1024;  // + room to align the tiles to 1,024 bytes
  launch("window_backward", window_backward_kernel, grid, kThreads, shared_bytes, stream,
         shape, static_cast<const __nv_bfloat16*>(q), static_cast<const __nv_bfloat16*>(k),
         static_cast<const __nv_bfloat16*>(v), static_cast<const __nv_bfloat16*>(dout), lse, delta,
         dq_accumulator, static_cast<__nv_bfloat16*>(dk), static_cast<__nv_bfloat16*>(dv));
}

}  // namespace mixlab::cuda::sm90
