#pragma once
// The attention backward of one block of 128 keys on wgmma, head dim D = 64 or 128, shared by the
// sm90 backward kernels (window_backward.cu, checkpoint_backward.cu), which differ only in which
// keys a block holds and which (key, query) pairs are visible (a Mask, below).  With
// P_tj = exp(q_t·k_j · scale − lse_t) on the visible pairs and D_t = Σ_d dO_td O_td, per query tile
// of 64 rows that sees the block:
//   Sᵀ = K Qᵀ, dPᵀ = V dOᵀ                       (shared memory, both K-major; m64n64, k = D)
//   Pᵀ = 2^(Sᵀ · scale · log2 e − lse · log2 e),  dSᵀ = Pᵀ ⊙ (dPᵀ − D)   (masked to visible pairs)
//   dV += Pᵀ dO,  dK += dSᵀ Q                     (m64nD; Pᵀ from registers; dO, Q read MN-major)
//   dQ_tile = dS K                                (m64nD; dSᵀ stored [keys][queries]: A MN-major)
// and dQ's float32 partial goes into a float32 accumulator by bulk reductions (cp.reduce.async.bulk
// add.f32): every key block adds to the rows it sees.
//
// Roles (FlashAttention-3's warp specialisation, as the forwards, key_pipeline.cuh): 384 threads.
// Consumer warpgroups 0 and 1 own keys [k0 + 64 wg, k0 + 64 wg + 64) of the block: their K and V
// tiles stay in shared memory, dV and dK in registers (m64nD: rows = keys).  The producer
// warpgroup streams the block's query tiles (Q, dO [64 x D] bf16, lse, D [64] float32: a
// QuerySlot<D>) through a ring of kBackwardStages<D> slots, so both consumers share each tile's
// loads.  Each consumer multiplies the tiles of its band (the tiles with a query that sees one of
// its keys) and waits for / releases the others.  setmaxnreg moves registers from the producer to
// the consumers (key_pipeline.cuh).  A [64 x 128] tile is two swizzled [64 x 64] column blocks,
// 8,192 bytes apart, as in the forwards (tile_loads.cuh's load_wide_tile_warpgroup).
//
// Two schedules, by what fits in a consumer thread's registers:
//   d 64   (key_block_backward_overlapped; 40 / 232 registers, a ring of 4): dV, dK, Sᵀ, dPᵀ, dQ
//          (32 each) and the A fragments of Pᵀ, dSᵀ (16 each); the next tile's Sᵀ, dPᵀ run while
//          this tile's gradient products do.
//   d 128  (key_block_backward_one_tile; 24 / 240 registers, a ring of 2, about 195 KiB of shared
//          memory): dV, dK (64 each) leave no room for a second tile's Sᵀ, dPᵀ, so one tile at a
//          time; dK reads dSᵀ from its shared tile (stored for dQ anyway) instead of A fragments,
//          and dQ is two m64n64 products, one per 64-column half (32 registers each).
//
// dQ: each warp owns 16 rows of the m64 dQ product, stages them (float32, [16 x 64], one 64-column
// half at d 128) in its own slice of shared memory and lane 0 issues one 4,096-byte bulk
// reduction; the slice is rewritten after lane 0's cp.async.bulk.wait_group.read and a __syncwarp
// (no wider sync).  The accumulator is [D / 64, N rounded up to 64, 64] float32 per head: each
// half's rows contiguous, so a warp's 16 x 64 slice is one contiguous 4,096 bytes.

#include <cuda_bf16.h>
#include <cstdint>

#include "attention/cuda/sm90/key_pipeline.cuh"
#include "attention/cuda/sm90/tile_loads.cuh"
#include "attention/cuda/sm90/wgmma.cuh"

namespace mixlab::cuda::sm90 {

constexpr int kBackwardTile = 64;                                // queries per tile, keys per warpgroup
constexpr int kBackwardBlock = 128;                              // keys per block: two warpgroups
constexpr int kBackwardThreads = kProducerThread0 + kProducerThreads;  // 384
static_assert(kBackwardBlock == 16 * kConsumerWarps, "a consumer warpgroup per 64 keys");
// Query tiles in flight, and the registers setmaxnreg leaves the producer / gives each consumer.
template <int D>
constexpr int kBackwardStages = D == 64 ? 4 : 2;
template <int D>
constexpr int kBackwardProducerRegisters = D == 64 ? kProducerRegisters : 24;
template <int D>
constexpr int kBackwardConsumerRegisters = D == 64 ? kConsumerRegisters : 240;
static_assert(register_split_fits<kBackwardProducerRegisters<128>, kBackwardConsumerRegisters<128>>,
              "one SM's register file");

// One query tile of the ring: q, dout [64 x D] bf16, each D / 64 swizzled [64 x 64] column blocks
// 8,192 bytes apart.
template <int D>
struct alignas(1024) QuerySlot {
  static_assert(D == 64 || D == 128, "head dim 64 or 128");
  unsigned char q[kBackwardTile * D * 2];     // K-major for Sᵀ = K Qᵀ, MN-major for dK += dSᵀ Q
  unsigned char dout[kBackwardTile * D * 2];  // K-major for dPᵀ = V dOᵀ, MN-major for dV += Pᵀ dO
  float lse[kBackwardTile];
  float delta[kBackwardTile];
};

template <int D>
struct alignas(1024) KeyBlockSmem {
  TileRing<kBackwardStages<D>, QuerySlot<D>> ring;
  unsigned char k[2][kBackwardTile * D * 2];    // [warpgroup]: K-major for Sᵀ, MN-major for dQ = dS K
  unsigned char v[2][kBackwardTile * D * 2];    // [warpgroup]: K-major for dPᵀ = V dOᵀ
  unsigned char ds[2][2][kBackwardTile * 128];  // [warpgroup][tile parity]: dSᵀ bf16 [keys][queries]
  alignas(16) float dq[kConsumerWarps][16 * 64];  // [warp]: its 16 rows of dQ's partial (a half), row-major
};
static_assert(sizeof(KeyBlockSmem<128>) + 1024 <= 227 * 1024, "an H100 / H200 block's shared memory");

// One head's query-side inputs: q, dout [N, D] bf16; lse, delta [N]; dq_accumulator [D / 64,
// n_padded, 64] float32 (n_padded ≥ N rounded up to 64).
struct QuerySide {
  const __nv_bfloat16* q;
  const __nv_bfloat16* dout;
  const float* lse;
  const float* delta;
  float* dq_accumulator;
  int n;
  int n_padded;
};

#if MIXLAB_SM90A
// setmaxnreg at the roles' split, per head dim (every warp of the warpgroup).
template <int D>
__device__ __forceinline__ void backward_producer_registers() {
  producer_gives_registers<kBackwardProducerRegisters<D>>();
}
template <int D>
__device__ __forceinline__ void backward_consumer_registers() {
  consumer_takes_registers<kBackwardConsumerRegisters<D>>();
}

// The producer warpgroup: query tiles first .. first + tiles − 1 (rows q0 = 64 (first + i) ..) into
// the ring; rows at or past N zero-filled.  Every producer thread copies (and arrives) per fill.
template <int D>
__device__ __forceinline__ void produce_queries(KeyBlockSmem<D>& sm, const QuerySide& side, int first, int tiles) {
  produce(sm.ring, tiles, [&](int i, QuerySlot<D>& slot, int thread) {
    const int q0 = (first + i) * kBackwardTile, valid = side.n - q0;
    load_wide_tile_warpgroup<kBackwardTile, D>(thread, slot.q, side.q + static_cast<size_t>(q0) * D, valid, D);
    load_wide_tile_warpgroup<kBackwardTile, D>(thread, slot.dout, side.dout + static_cast<size_t>(q0) * D, valid, D);
    const int r = thread % kBackwardTile;  // threads 0 .. 63: lse, 64 .. 127: D
    const float* src = (thread < kBackwardTile ? side.lse : side.delta) + (r < valid ? q0 + r : 0);
    load_float((thread < kBackwardTile ? slot.lse : slot.delta) + r, src, r < valid);
  });
}

// Sᵀ = K Qᵀ and dPᵀ = V dOᵀ ([64 keys x 64 queries] each, k = D: D / 16 k16 steps, step kk in
// column block kk / 4) as one committed group; no wait.
template <int D>
__device__ __forceinline__ void issue_transposed_scores(float (&s)[32], float (&dp)[32], const unsigned char* k_tile,
                                                        const unsigned char* v_tile, const QuerySlot<D>& slot) {
  auto step = [](int kk) { return kBackwardTile * 128 * (kk / 4) + 32 * (kk % 4); };
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk)
    mma_ss<0, 0>(s, advance(descriptor_k_major(k_tile), step(kk)), advance(descriptor_k_major(slot.q), step(kk)),
                 kk > 0);
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk)
    mma_ss<0, 0>(dp, advance(descriptor_k_major(v_tile), step(kk)), advance(descriptor_k_major(slot.dout), step(kk)),
                 kk > 0);
  commit();
}

// d 64: dV += Pᵀ dO, dK += dSᵀ Q (k: the tile's queries, 16 rows of dO / Q per step) and dQ = dS K
// (rows: queries; k: the warpgroup's keys, 16 rows of dSᵀ and K per step) as one committed group.
__device__ __forceinline__ void issue_gradients(float (&dv)[32], float (&dk)[32], float (&dq)[32],
                                                const uint32_t (&a_p)[4][4], const uint32_t (&a_ds)[4][4],
                                                const QuerySlot<64>& slot, const unsigned char* ds_tile,
                                                const unsigned char* k_tile) {
  constexpr int kStep = 16 * 128;  // a k16 step across the rows of an MN-major tile
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) mma_rs<1>(dv, a_p[kk], advance(descriptor_mn_major(slot.dout), kStep * kk), 1);
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) mma_rs<1>(dk, a_ds[kk], advance(descriptor_mn_major(slot.q), kStep * kk), 1);
#pragma unroll
  for (int kk = 0; kk < 4; ++kk)
    mma_ss<1, 1>(dq, advance(descriptor_mn_major(ds_tile), kStep * kk), advance(descriptor_mn_major(k_tile), kStep * kk),
                 kk > 0);
  commit();
}

// d 128, half b of dQ: dQ[:, 64b, 64b + 64) = dS K[:, 64b, 64b + 64) (rows: queries; k: the
// warpgroup's keys; K's column block b) as one committed group.
__device__ __forceinline__ void issue_dq_half(float (&dq)[32], const unsigned char* ds_tile, const unsigned char* k_tile,
                                              int b) {
  constexpr int kStep = 16 * 128;
#pragma unroll
  for (int kk = 0; kk < 4; ++kk)
    mma_ss<1, 1>(dq, advance(descriptor_mn_major(ds_tile), kStep * kk),
                 advance(descriptor_mn_major(k_tile + b * kBackwardTile * 128), kStep * kk), kk > 0);
  commit();
}
// d 128: dV += Pᵀ dO (Pᵀ from registers) and dK += dSᵀ Q (dSᵀ from its shared tile, K-major: rows
// keys, k = queries), m64n128 with dO, Q MN-major (two column blocks 8,192 bytes apart), and the
// second half of dQ, as one committed group.
__device__ __forceinline__ void issue_key_gradients_d128(float (&dv)[64], float (&dk)[64], float (&dq_high)[32],
                                                         const uint32_t (&a_p)[4][4], const QuerySlot<128>& slot,
                                                         const unsigned char* ds_tile, const unsigned char* k_tile) {
  constexpr int kStep = 16 * 128, kBlock = kBackwardTile * 128;
#pragma unroll
  for (int kk = 0; kk < 4; ++kk)
    mma_rs_n128<1>(dv, a_p[kk], advance(descriptor_mn_major(slot.dout, kBlock), kStep * kk), 1);
#pragma unroll
  for (int kk = 0; kk < 4; ++kk)
    mma_ss_n128<0, 1>(dk, advance(descriptor_k_major(ds_tile), 32 * kk),
                      advance(descriptor_mn_major(slot.q, kBlock), kStep * kk), 1);
#pragma unroll
  for (int kk = 0; kk < 4; ++kk)
    mma_ss<1, 1>(dq_high, advance(descriptor_mn_major(ds_tile), kStep * kk),
                 advance(descriptor_mn_major(k_tile + kBlock), kStep * kk), kk > 0);
  commit();
}

// Sᵀ, dPᵀ of the tile (lse, D from its slot) -> Pᵀ, dSᵀ in place (per thread: key rows r, r + 8 of
// the warpgroup, query columns 8j + 2·quad + {0, 1}); where Masked, only the columns [lo[h], hi[h])
// (less 2·quad) of row h are kept.  A hidden pair gets P = dS = 0 by a select (its exponent may
// overflow: rows past N are zero-filled, lse too).
template <bool Masked, int D>
__device__ __forceinline__ void score_gradients_in(float (&s)[32], float (&dp)[32], const QuerySlot<D>& slot,
                                                   const int (&lo)[2], const int (&hi)[2], float scale_log2) {
  constexpr float kLog2e = 1.4426950408889634f;
  const int quad = threadIdx.x % 4;
#pragma unroll
  for (int jj = 0; jj < 8; ++jj) {
    const float2 lse = *reinterpret_cast<const float2*>(slot.lse + 8 * jj + 2 * quad);
    const float2 delta = *reinterpret_cast<const float2*>(slot.delta + 8 * jj + 2 * quad);
    const float base[2] = {lse.x * kLog2e, lse.y * kLog2e}, d[2] = {delta.x, delta.y};
#pragma unroll
    for (int e = 4 * jj; e < 4 * jj + 4; ++e) {
      const int column = 8 * jj + (e & 1), h = (e >> 1) & 1;
      float p = exp2f(s[e] * scale_log2 - base[e & 1]);
      if constexpr (Masked) p = column >= lo[h] && column < hi[h] ? p : 0.f;
      dp[e] = p * (dp[e] - d[e & 1]);
      s[e] = p;
    }
  }
}
// The same for the tile at query q0: mask.columns(q0, h, lo, hi) gives the queries of the tile that
// the thread's key row h sees, as columns [lo, hi); applied only where mask.edge(q0) (uniform per
// warpgroup: some pair of the tile is hidden).
template <class Mask, int D>
__device__ __forceinline__ void score_gradients(float (&s)[32], float (&dp)[32], const QuerySlot<D>& slot,
                                                const Mask& mask, int q0, float scale_log2) {
  int lo[2] = {0, 0}, hi[2] = {kBackwardTile, kBackwardTile};
  if (!mask.edge(q0)) return score_gradients_in<false>(s, dp, slot, lo, hi, scale_log2);
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    mask.columns(q0, h, lo[h], hi[h]);
    lo[h] -= 2 * (threadIdx.x % 4);  // compared with the column less the thread's offset 2·quad
    hi[h] -= 2 * (threadIdx.x % 4);
  }
  score_gradients_in<true>(s, dp, slot, lo, hi, scale_log2);
}

// dSᵀ (the thread's accumulator rows) into ds_tile as bf16 [keys][queries], swizzled, then the proxy
// fence that lets the warpgroup's dQ product read it after a warpgroup_sync.
__device__ __forceinline__ void store_ds(const float (&ds)[32], unsigned char* ds_tile) {
  const int lane = threadIdx.x % 32, row = 16 * ((threadIdx.x % 128) / 32) + lane / 4;
#pragma unroll
  for (int jj = 0; jj < 8; ++jj)
#pragma unroll
    for (int h = 0; h < 2; ++h)
      *reinterpret_cast<uint32_t*>(ds_tile + swizzled_offset(row + 8 * h, 8 * jj + 2 * (lane % 4))) =
          pack_bf16(ds[4 * jj + 2 * h], ds[4 * jj + 2 * h + 1]);
  fence_shared_to_async();
}

// blocks[u] <- blocks[(u + By) mod 8] where `on` (selects: the index stays static).
template <int By>
__device__ __forceinline__ void rotate_blocks(float2 (&blocks)[8][2], bool on) {
  float2 rotated[8][2];
#pragma unroll
  for (int u = 0; u < 8; ++u)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const float2 other = blocks[(u + By) % 8][h];
      rotated[u][h] = make_float2(on ? other.x : blocks[u][h].x, on ? other.y : blocks[u][h].y);
    }
#pragma unroll
  for (int u = 0; u < 8; ++u)
#pragma unroll
    for (int h = 0; h < 2; ++h) blocks[u][h] = rotated[u][h];
}

// The warp's 16 rows of dQ's partial (queries q0 + 16w ..) through its staging slice ([16 x 64]
// float32, the rows' order in the accumulator) into the accumulator by one bulk reduction.
// Banks: the slice's rows are 256 bytes apart, so the 8 rows of one store instruction would hit
// the same 8 banks; store u of row r writes column block (u + r mod 4) mod 8 instead (its blocks
// rotated by selects first): 2 wavefronts per float2 store, not 8.  Lane 0's wait: the previous
// tile's reduction has read the slice (issued a whole tile earlier, so it rarely waits); the
// __syncwarps order it against the lanes' stores, and the stores against the issue.
__device__ __forceinline__ void reduce_dq(const float (&dq)[32], float* staging, float* accumulator_rows) {
  const int lane = threadIdx.x % 32, row = lane / 4, shift = row % 4;
  float2 blocks[8][2];  // [column block jj][h]: columns 8jj + 2·quad, + 1 of rows row, row + 8
#pragma unroll
  for (int jj = 0; jj < 8; ++jj)
#pragma unroll
    for (int h = 0; h < 2; ++h) blocks[jj][h] = make_float2(dq[4 * jj + 2 * h], dq[4 * jj + 2 * h + 1]);
  rotate_blocks<1>(blocks, shift & 1);
  rotate_blocks<2>(blocks, shift & 2);
  if (lane == 0) bulk_wait_read();
  __syncwarp();
#pragma unroll
  for (int u = 0; u < 8; ++u)
#pragma unroll
    for (int h = 0; h < 2; ++h)
      *reinterpret_cast<float2*>(staging + (row + 8 * h) * 64 + 8 * ((u + shift) % 8) + 2 * (lane % 4)) = blocks[u][h];
  fence_shared_to_async();
  __syncwarp();
  if (lane == 0) bulk_add_f32(accumulator_rows, staging, 16 * 64 * sizeof(float));
}

template <int R>
__device__ __forceinline__ void to_fragments(const float (&d)[32], uint32_t (&a)[R][4]) {
#pragma unroll
  for (int kk = 0; kk < R; ++kk) accumulator_to_a(d, kk, a[kk]);
}

// After the wait_group that completed B (issue_gradients): its registers pinned below it.
__device__ __forceinline__ void fence_gradient_registers(float (&dv)[32], float (&dk)[32], float (&dq)[32],
                                                         uint32_t (&a_p)[4][4], uint32_t (&a_ds)[4][4]) {
  fence_registers(dv);
  fence_registers(dk);
  fence_registers(dq);
  fence_registers(a_p);
  fence_registers(a_ds);
}

// Tiles [from, to) of the ring that the warpgroup does not multiply: waited for and released, so
// that every consumer warp releases every tile once and in order (key_pipeline.cuh).
template <class Ring>
__device__ __forceinline__ void skip_tiles(Ring& ring, int from, int to) {
  for (int i = from; i < to; ++i) {
    wait_tile(ring, i);
    release_tile(ring, i);
  }
}

// Rows [q0 + 16 warp, + 16) of half b of one head's dQ accumulator ([D / 64, n_padded, 64]).
__device__ __forceinline__ float* dq_accumulator_rows(const QuerySide& side, int q0, int warp, int b) {
  return side.dq_accumulator + (static_cast<size_t>(b) * side.n_padded + q0 + 16 * warp) * 64;
}

// d 64: consumer warpgroup wg's band, tiles [begin, end) (begin < end; ring order; tile i is
// queries q0 = 64 (first + i) ..), into dv, dk (dk unscaled: Σ dSᵀ Q) and the dQ accumulator.  Its
// K, V tiles are in sm.k[wg], sm.v[wg].  Registers: Sᵀ, dPᵀ of tile i; Pᵀ, dSᵀ fragments and dQ of
// tile i − 1.
//
//   prologue  wait tile b;  issue A_b = {Sᵀ_b, dPᵀ_b};  wait<0>;  Pᵀ_b, dSᵀ_b;  dSᵀ_b -> ds[b & 1]
//   step i    wait tile i;  warpgroup_sync (dSᵀ_{i−1} of all four warps in ds[(i − 1) & 1]);
//             issue A_i;  issue B_{i−1} = {dV += Pᵀ dO, dK += dSᵀ Q, dQ = dS K} of tile i − 1;
//             wait<1>  (A_i done; B_{i−1} may run)   Pᵀ_i, dSᵀ_i (exp2); dSᵀ_i -> ds[i & 1]
//             wait<0>  (B_{i−1} done)   release tile i − 1;  dQ_{i−1} -> reduction;  fragments of i
//   epilogue  warpgroup_sync;  issue B_{e−1};  wait<0>;  release tile e − 1;  dQ_{e−1} -> reduction
//
// ds[i & 1] is rewritten at step i + 2, after every warp passed step i + 2's warpgroup_sync, which
// each reached after its wait<0> of step i + 1 (B_i, the product reading it, complete).  wgmma.fence
// before each issue: S, dP, dV, dK, dQ and the fragments were written by the threads since.
template <class Mask>
__device__ void key_block_backward_overlapped(KeyBlockSmem<64>& sm, const QuerySide& side, int wg, int first,
                                              int begin, int end, float scale, const Mask& mask, float (&dv)[32],
                                              float (&dk)[32]) {
  constexpr int kStages = kBackwardStages<64>;
  const float scale_log2 = scale * 1.4426950408889634f;
  const unsigned char* k_tile = sm.k[wg];
  const int warp = (threadIdx.x % 128) / 32;
  float* staging = sm.dq[threadIdx.x / 32];
  auto q0 = [&](int i) { return (first + i) * kBackwardTile; };
  float s[32], dp[32], dq[32];
  uint32_t a_p[4][4], a_ds[4][4];
  wait_tile(sm.ring, begin);
  fence();
  issue_transposed_scores(s, dp, k_tile, sm.v[wg], sm.ring.slot[begin % kStages]);
  wait<0>();
  fence_registers(s);
  fence_registers(dp);
  score_gradients(s, dp, sm.ring.slot[begin % kStages], mask, q0(begin), scale_log2);
  store_ds(dp, sm.ds[wg][begin & 1]);
  to_fragments(s, a_p);
  to_fragments(dp, a_ds);
  for (int i = begin + 1; i < end; ++i) {
    const QuerySlot<64>& slot = sm.ring.slot[i % kStages];
    wait_tile(sm.ring, i);
    warpgroup_sync(wg);
    fence();
    issue_transposed_scores(s, dp, k_tile, sm.v[wg], slot);
    issue_gradients(dv, dk, dq, a_p, a_ds, sm.ring.slot[(i - 1) % kStages], sm.ds[wg][(i - 1) & 1], k_tile);
    wait<1>();
    fence_registers(s);
    fence_registers(dp);
    score_gradients(s, dp, slot, mask, q0(i), scale_log2);
    store_ds(dp, sm.ds[wg][i & 1]);  // also keeps ptxas from hoisting wait<0> above the exp2s
    wait<0>();
    fence_gradient_registers(dv, dk, dq, a_p, a_ds);
    release_tile(sm.ring, i - 1);
    reduce_dq(dq, staging, dq_accumulator_rows(side, q0(i - 1), warp, 0));
    to_fragments(s, a_p);
    to_fragments(dp, a_ds);
  }
  warpgroup_sync(wg);
  fence();
  issue_gradients(dv, dk, dq, a_p, a_ds, sm.ring.slot[(end - 1) % kStages], sm.ds[wg][(end - 1) & 1], k_tile);
  wait<0>();
  fence_gradient_registers(dv, dk, dq, a_p, a_ds);
  release_tile(sm.ring, end - 1);
  reduce_dq(dq, staging, dq_accumulator_rows(side, q0(end - 1), warp, 0));
  if (threadIdx.x % 32 == 0) bulk_wait();  // the staging slice stays until the kernel ends
}

// d 128: the same band one tile at a time (dV, dK take 128 of the 240 registers; the rest holds
// Sᵀ, dPᵀ (64) of the tile, or its Pᵀ fragments (16) and the two halves of dQ (32 each)):
//
//   step i   wait tile i;  issue A_i = {Sᵀ_i, dPᵀ_i};  wait<0>;  Pᵀ_i, dSᵀ_i;  dSᵀ_i -> ds[i & 1];
//            fragments of Pᵀ_i;  warpgroup_sync (dSᵀ_i of all four warps in ds[i & 1]);
//            issue B0_i = {dQ half 0};  issue B1_i = {dV += Pᵀ dO, dK += dSᵀ Q, dQ half 1};
//            wait<1>  (B0_i done)  dQ half 0 -> reduction  [while B1_i runs]
//            wait<0>  (B1_i done)  release tile i;  dQ half 1 -> reduction
//
// Both halves go through the warp's one staging slice: half 1 waits (reduce_dq's wait_group.read)
// for half 0's reduction to have read it, issued a whole B1 earlier.  ds[i & 1] is rewritten at
// step i + 2, after every warp passed step i + 1's warpgroup_sync, which each reached after its
// wait<0> of step i (B0_i, B1_i, the products reading it, complete).
template <class Mask>
__device__ void key_block_backward_one_tile(KeyBlockSmem<128>& sm, const QuerySide& side, int wg, int first,
                                            int begin, int end, float scale, const Mask& mask, float (&dv)[64],
                                            float (&dk)[64]) {
  constexpr int kStages = kBackwardStages<128>;
  const float scale_log2 = scale * 1.4426950408889634f;
  const unsigned char* k_tile = sm.k[wg];
  const int warp = (threadIdx.x % 128) / 32;
  float* staging = sm.dq[threadIdx.x / 32];
  for (int i = begin; i < end; ++i) {
    const QuerySlot<128>& slot = sm.ring.slot[i % kStages];
    const int q0 = (first + i) * kBackwardTile;
    unsigned char* ds_tile = sm.ds[wg][i & 1];
    float s[32], dp[32];
    uint32_t a_p[4][4];
    wait_tile(sm.ring, i);
    fence();
    issue_transposed_scores(s, dp, k_tile, sm.v[wg], slot);
    wait<0>();
    fence_registers(s);
    fence_registers(dp);
    score_gradients(s, dp, slot, mask, q0, scale_log2);
    store_ds(dp, ds_tile);
    to_fragments(s, a_p);
    warpgroup_sync(wg);
    float dq_low[32], dq_high[32];
    fence();
    issue_dq_half(dq_low, ds_tile, k_tile, 0);
    issue_key_gradients_d128(dv, dk, dq_high, a_p, slot, ds_tile, k_tile);
    wait<1>();
    fence_registers(dq_low);
    reduce_dq(dq_low, staging, dq_accumulator_rows(side, q0, warp, 0));
    wait<0>();
    fence_registers(dv);
    fence_registers(dk);
    fence_registers(dq_high);
    fence_registers(a_p);
    release_tile(sm.ring, i);
    reduce_dq(dq_high, staging, dq_accumulator_rows(side, q0, warp, 1));
  }
  if (threadIdx.x % 32 == 0) bulk_wait();  // the staging slice stays until the kernel ends
}

// Consumer warpgroup wg's walk over the block's query tiles 0 .. tiles − 1 (ring order; tile i is
// queries q0 = 64 (first + i) ..): it multiplies tiles [begin, end) into dv, dk ([64 keys x D],
// the m64nD accumulator layout; dk unscaled: Σ dSᵀ Q) and the dQ accumulator, and only waits for and
// releases the others.
template <int D, class Mask>
__device__ void key_block_backward(KeyBlockSmem<D>& sm, const QuerySide& side, int wg, int first, int begin, int end,
                                   int tiles, float scale, const Mask& mask, float (&dv)[D / 2], float (&dk)[D / 2]) {
#pragma unroll
  for (int i = 0; i < D / 2; ++i) dv[i] = dk[i] = 0.f;
  begin = max(0, min(begin, tiles));
  end = max(begin, min(end, tiles));
  skip_tiles(sm.ring, 0, begin);
  if (begin < end) {
    if constexpr (D == 64)
      key_block_backward_overlapped(sm, side, wg, first, begin, end, scale, mask, dv, dk);
    else
      key_block_backward_one_tile(sm, side, wg, first, begin, end, scale, mask, dv, dk);
  }
  skip_tiles(sm.ring, end, tiles);
}

// Consumer warpgroup wg's K and V rows (64, from `rows_start` `row_stride` elements apart, rows at or
// past `valid` zero; D / 64 column blocks) into sm.k[wg], sm.v[wg], in place for its products on
// return.
template <int D>
__device__ __forceinline__ void load_key_tiles(KeyBlockSmem<D>& sm, int wg, const __nv_bfloat16* k,
                                               const __nv_bfloat16* v, int valid, size_t row_stride) {
  const int thread = threadIdx.x % 128;
  load_wide_tile_warpgroup<kBackwardTile, D>(thread, sm.k[wg], k, valid, row_stride);
  load_wide_tile_warpgroup<kBackwardTile, D>(thread, sm.v[wg], v, valid, row_stride);
  cp_async_commit();
  cp_async_wait_all();
  fence_shared_to_async();
  warpgroup_sync(wg);
}

// The warpgroup's rows of dV and dK · scale (dk_acc holds Σ dSᵀ Q; m64nD accumulators) into
// [rows, D] matrices of T (bf16 or float32): rows r, r + 8 of this thread, those below `valid`.
template <int D, class T>
__device__ void store_key_gradients(const float (&dv_acc)[D / 2], const float (&dk_acc)[D / 2], float scale, int valid,
                                    T* dv, T* dk) {
  const int lane = threadIdx.x % 32, row = 16 * ((threadIdx.x % 128) / 32) + lane / 4;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    if (row + 8 * h >= valid) continue;
#pragma unroll
    for (int jj = 0; jj < D / 8; ++jj) {
      const size_t at = static_cast<size_t>(row + 8 * h) * D + 8 * jj + 2 * (lane % 4);
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
