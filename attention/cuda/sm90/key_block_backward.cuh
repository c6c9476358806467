#pragma once
// The attention backward of one block of 64 keys on wgmma, shared by the sm90 backward kernels
// (window_backward.cu, checkpoint_backward.cu), which differ only in which keys a block holds
// and which (key, query) pairs are visible.  With P_tj = exp(q_t·k_j · scale − lse_t) on the
// visible pairs and D_t = Σ_d dO_td O_td, per query tile of 64 rows that sees the block:
//   Sᵀ = K Qᵀ, dPᵀ = V dOᵀ                       (shared memory, both K-major)
//   Pᵀ, dSᵀ = Pᵀ ⊙ (dPᵀ − D)                     (masked to the visible pairs)
//   dV += Pᵀ dO,  dK += dSᵀ Q                     (Pᵀ, dSᵀ from registers; dO, Q read MN-major)
//   dQ_tile = dS K                                (dSᵀ stored [keys][queries]: A read MN-major)
// and dQ's 64 x 64 float32 partial goes into a float32 accumulator by one bulk reduction
// (cp.reduce.async.bulk): every key block adds to the rows it sees.  One warpgroup; per thread the
// accumulator rows r, r + 8 of wgmma.cuh's layout (keys for dV, dK; queries for dQ).

#include <cuda_bf16.h>
#include <cstdint>

#include "attention/cuda/sm90/tile_loads.cuh"
#include "attention/cuda/sm90/wgmma.cuh"

namespace mixlab::cuda::sm90 {

constexpr int kBackwardBlock = 64;     // keys per block, queries per tile
constexpr int kBackwardThreads = 128;  // one warpgroup

struct alignas(1024) KeyBlockSmem {
  unsigned char k[kBackwardBlock * 128];        // K-major for Sᵀ = K Qᵀ, MN-major for dQ = dS K
  unsigned char v[kBackwardBlock * 128];        // K-major for dPᵀ = V dOᵀ
  unsigned char q[2][kBackwardBlock * 128];     // K-major for Sᵀ, MN-major for dK += dSᵀ Q
  unsigned char dout[2][kBackwardBlock * 128];  // K-major for dPᵀ, MN-major for dV += Pᵀ dO
  unsigned char ds[kBackwardBlock * 128];       // dSᵀ in bf16, [keys][queries]
  alignas(16) float dq[kBackwardBlock * 64];    // dQ's partial, row-major: the bulk reduction's source
  alignas(16) float lse[2][kBackwardBlock];
  alignas(16) float delta[2][kBackwardBlock];
};

// One head's query-side inputs: q, dout [N, 64] bf16; lse, delta [N]; dq_accumulator [≥ N rounded
// up to 64, 64] float32.
struct QuerySide {
  const __nv_bfloat16* q;
  const __nv_bfloat16* dout;
  const float* lse;
  const float* delta;
  float* dq_accumulator;
  int n;
};

#if MIXLAB_SM90A
// dV and dK (unscaled: Σ dSᵀ Q) of the block whose K and V tiles the caller has issued to sm.k and
// sm.v by cp.async (not yet committed), over query tiles first .. last.  visible(key, t): whether
// the block's key `key` (0 .. 63) and query t form a visible pair; whole(q0): whether every pair
// of the tile at q0 is (then no mask is applied).
template <class Visible, class Whole>
__device__ void key_block_backward(KeyBlockSmem& sm, const QuerySide& side, int first, int last, float scale,
                                   Visible visible, Whole whole, float (&dv_acc)[32], float (&dk_acc)[32]) {
  constexpr int kStep = 16 * 128;  // a k16 step across the rows of an MN-major tile
  constexpr float kLog2e = 1.4426950408889634f;
  const int lane = threadIdx.x % 32, row = 16 * (threadIdx.x / 32) + lane / 4, n = side.n;
  auto load_queries = [&](int tile, int stage) {
    const int q0 = tile * kBackwardBlock;
    load_tile<kBackwardThreads>(sm.q[stage], side.q + static_cast<size_t>(q0) * 64, kBackwardBlock, n - q0);
    load_tile<kBackwardThreads>(sm.dout[stage], side.dout + static_cast<size_t>(q0) * 64, kBackwardBlock, n - q0);
    load_floats(sm.lse[stage], side.lse + q0, kBackwardBlock, n - q0);
    load_floats(sm.delta[stage], side.delta + q0, kBackwardBlock, n - q0);
  };
  load_queries(first, first & 1);
  cp_async_commit();
#pragma unroll
  for (int i = 0; i < 32; ++i) dv_acc[i] = dk_acc[i] = 0.f;
  const float scale_log2 = scale * kLog2e;

  for (int tile = first; tile <= last; ++tile) {
    const int stage = tile & 1, q0 = tile * kBackwardBlock;
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
    for (int kk = 0; kk < 4; ++kk)
      mma_ss<0, 0>(s, advance(descriptor_k_major(sm.k), 32 * kk), advance(descriptor_k_major(sm.q[stage]), 32 * kk),
                   kk > 0);
#pragma unroll
    for (int kk = 0; kk < 4; ++kk)
      mma_ss<0, 0>(dp, advance(descriptor_k_major(sm.v), 32 * kk),
                   advance(descriptor_k_major(sm.dout[stage]), 32 * kk), kk > 0);
    commit();
    wait<0>();
    fence_registers(s);
    fence_registers(dp);

    // Pᵀ and dSᵀ in place, masked unless every pair of the tile is visible.
    const bool all_visible = whole(q0);
#pragma unroll
    for (int e = 0; e < 32; ++e) {
      const int key = row + ((e & 2) ? 8 : 0), col = 8 * (e / 4) + 2 * (lane % 4) + (e & 1);
      const bool shown = all_visible || visible(key, q0 + col);
      const float p = shown ? exp2f(s[e] * scale_log2 - sm.lse[stage][col] * kLog2e) : 0.f;
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
        *reinterpret_cast<float2*>(sm.dq + (row + 8 * h) * 64 + 8 * jj + 2 * (lane % 4)) =
            make_float2(dq[4 * jj + 2 * h], dq[4 * jj + 2 * h + 1]);
    fence_shared_to_async();
    __syncthreads();
    if (threadIdx.x == 0)
      bulk_add_f32(side.dq_accumulator + static_cast<size_t>(q0) * 64, sm.dq, kBackwardBlock * 64 * sizeof(float));
  }
  if (threadIdx.x == 0) bulk_wait();
}

// The block's rows of dV and dK · scale (dk_acc holds Σ dSᵀ Q) into [rows, 64] matrices of T
// (bf16 or float32): rows r, r + 8 of this thread, those below `valid`.
template <class T>
__device__ void store_key_gradients(const float (&dv_acc)[32], const float (&dk_acc)[32], float scale, int valid,
                                    T* dv, T* dk) {
  const int lane = threadIdx.x % 32, row = 16 * (threadIdx.x / 32) + lane / 4;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    if (row + 8 * h >= valid) continue;
#pragma unroll
    for (int jj = 0; jj < 8; ++jj) {
      const size_t at = static_cast<size_t>(row + 8 * h) * 64 + 8 * jj + 2 * (lane % 4);
      const float2 dv2 = make_float2(dv_acc[4 * jj + 2 * h], dv_acc[4 * jj + 2 * h + 1]);
      const float2 dk2 = make_float2(dk_acc[4 * jj + 2 * h] * scale, dk_acc[4 * jj + 2 * h + 1] * scale);
      if constexpr (sizeof(T) == 2) {
        *reinterpret_cast<__nv_bfloat162*>(dv + at) = __float22bfloat162_rn(dv2);
        *reinterpret_cast<__nv_bfloat162*>(dk + at) = __float22bfloat162_rn(dk2);
      } else {
        *reinterpret_cast<float2*>(dv + at) = dv2;
        *reinterpret_cast<float2*>(dk + at) = dk2;
      }
    }
  }
}
#endif

}  // namespace mixlab::cuda::sm90
