#pragma once
// A warpgroup's running softmax over key tiles (FlashAttention's online softmax) for the sm90
// forward kernels, head dim D = 64 or 128, in the log2 domain: with s = q·k · scale · log2 e,
//   m = running max,  l = Σ 2^(s − m),  O = Σ 2^(s − m) v,   and at the end
//   o = O / l,  lse = (m + log2 l) · ln 2.
// Per thread: the two accumulator rows r, r + 8 of wgmma.cuh's layout (D/4 of O's D columns, Keys/4
// of a score tile's); l is a per-thread partial sum, added over the quad of lanes sharing the rows
// at the end.  attend_band (below) is the pipelined key loop both forwards share.

#include <cuda_bf16.h>
#include <cstdint>

#include "attention/cuda/mma_tiles.cuh"
#include "attention/cuda/sm90/key_pipeline.cuh"
#include "attention/cuda/sm90/tile_loads.cuh"
#include "attention/cuda/sm90/wgmma.cuh"

namespace mixlab::cuda::sm90 {

// The forwards' ring depth per head dim D: 4 stages of 128-key K and V tiles at d 64, 2 at d 128
// (128 KiB either way).
template <int D>
constexpr int kForwardStages = D == 64 ? 4 : 2;

#if MIXLAB_SM90A
// Keys: the key tile's width, 64 or 128 (S is m64n64 or m64n128); D: the head dim, 64 or 128 (O
// is m64n64 or m64n128).
template <int Keys, int D = 64>
struct OnlineSoftmax {
  static_assert(Keys == 64 || Keys == 128, "m64n64 or m64n128 score tiles");
  static_assert(D == 64 || D == 128, "m64n64 or m64n128 output tiles");
  static constexpr int kScores = Keys / 2;  // a thread's score registers per tile
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  float acc[D / 2];  // O: m64 (queries) x nD (head dim)

  __device__ void clear() {
#pragma unroll
    for (int i = 0; i < D / 2; ++i) acc[i] = 0.f;
  }

  // s: a tile's scores, masked (−inf where hidden), in the log2 domain -> its probabilities
  // 2^(s − m_new) in place; m and l move to m_new.  alpha = 2^(m_old − m_new) per row h: O must
  // be rescaled by it (rescale) before the tile's P V is added, once no product writes O.
  __device__ void absorb(float (&s)[kScores], float (&alpha)[2]) {
    float base[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float mx = -INFINITY;
#pragma unroll
      for (int jj = 0; jj < Keys / 8; ++jj) mx = fmaxf(mx, fmaxf(s[4 * jj + 2 * h], s[4 * jj + 2 * h + 1]));
      const float m_new = fmaxf(m[h], tiles::quad_max(mx));
      base[h] = m_new == -INFINITY ? 0.f : m_new;  // a row with nothing visible yet
      alpha[h] = exp2f(m[h] - base[h]);
      m[h] = m_new;
    }
    float row_sum[2] = {0.f, 0.f};
#pragma unroll
    for (int i = 0; i < kScores; ++i) {
      const int h = (i >> 1) & 1;
      s[i] = exp2f(s[i] - base[h]);
      row_sum[h] += s[i];
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) l[h] = l[h] * alpha[h] + row_sum[h];
  }

  __device__ void rescale(const float (&alpha)[2]) {
#pragma unroll
    for (int i = 0; i < D / 2; ++i) acc[i] *= alpha[(i >> 1) & 1];  // acc has the same rows as s
  }

  // o = O / l and lse for the thread's rows row0, row0 + 8 below n (o: [N, D] bf16, lse: [N]).
  __device__ void store(int row0, int n, __nv_bfloat16* o, float* lse) {
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = row0 + 8 * h;
      const float total = tiles::quad_sum(l[h]);
      if (row >= n) continue;
      const float inv = 1.f / total;
#pragma unroll
      for (int jj = 0; jj < D / 8; ++jj) {
        const int col = 8 * jj + 2 * (lane % 4);
        *reinterpret_cast<__nv_bfloat162*>(o + static_cast<size_t>(row) * D + col) =
            __floats2bfloat162_rn(acc[4 * jj + 2 * h] * inv, acc[4 * jj + 2 * h + 1] * inv);
      }
      if (lane % 4 == 0) lse[row] = (m[h] + log2f(total)) * 0.6931471805599453f;
    }
  }
};

// Issues S = Q Kᵀ ([64 x Keys]: q_desc the warpgroup's 64 query rows, K-major; k_tile Keys keys,
// K-major; both D / 64 column blocks of 64 dims, 64 · 128 and Keys · 128 bytes apart) as D / 16
// k16 products, committed as one group; no wait.
template <int Keys, int D = 64>
__device__ __forceinline__ void issue_scores(float (&s)[Keys / 2], uint64_t q_desc, const unsigned char* k_tile) {
  const uint64_t k_desc = descriptor_k_major(k_tile);
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const uint64_t q_step = advance(q_desc, 64 * 128 * (kk / 4) + 32 * (kk % 4));
    const uint64_t k_step = advance(k_desc, Keys * 128 * (kk / 4) + 32 * (kk % 4));
    if constexpr (Keys == 128)
      mma_ss_n128(s, q_step, k_step, kk > 0);
    else
      mma_ss<0, 0>(s, q_step, k_step, kk > 0);
  }
  commit();
}
// Issues O += P V (P: [64 x Keys] bf16 fragments in registers, k16 step kk = keys 16kk ..;
// v_tile: [Keys x D] MN-major, D / 64 column blocks Keys · 128 bytes apart, step kk 16 rows further
// in), committed as one group; no wait.
template <int Keys, int D = 64>
__device__ __forceinline__ void issue_values(float (&acc)[D / 2], const uint32_t (&p)[Keys / 16][4],
                                             const unsigned char* v_tile) {
  const uint64_t v_desc = D == 64 ? descriptor_mn_major(v_tile) : descriptor_mn_major(v_tile, Keys * 128);
#pragma unroll
  for (int kk = 0; kk < Keys / 16; ++kk) {
    if constexpr (D == 128)
      mma_rs_n128<1>(acc, p[kk], advance(v_desc, 16 * 128 * kk), 1);
    else
      mma_rs<1>(acc, p[kk], advance(v_desc, 16 * 128 * kk), 1);
  }
  commit();
}
// The probabilities as P V's A fragments (bf16), in place of the layout (wgmma.cuh's header).
template <int Keys>
__device__ __forceinline__ void to_fragments(const float (&s)[Keys / 2], uint32_t (&p)[Keys / 16][4]) {
#pragma unroll
  for (int kk = 0; kk < Keys / 16; ++kk) accumulator_to_a(s, kk, p[kk]);
}
// Raw scores of sequence tile i -> the log2 domain, −inf outside the columns [lo, hi) the thread's
// row h (r or r + 8) sees, mask.columns(i, h, lo, hi) (both rules keep an interval of keys); per
// element only where mask.edge(i) (uniform per warpgroup).
template <int Keys, class Mask>
__device__ __forceinline__ void scale_and_mask(float (&s)[Keys / 2], const Mask& mask, int i, float scale_log2) {
  if (!mask.edge(i)) {
#pragma unroll
    for (int e = 0; e < Keys / 2; ++e) s[e] *= scale_log2;
    return;
  }
  int lo[2], hi[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    mask.columns(i, h, lo[h], hi[h]);
    lo[h] -= 2 * (threadIdx.x % 4);  // compared with the column less the thread's offset 2·quad
    hi[h] -= 2 * (threadIdx.x % 4);
  }
#pragma unroll
  for (int e = 0; e < Keys / 2; ++e) {
    const int column = 8 * (e / 4) + (e & 1), h = (e >> 1) & 1;
    s[e] = column >= lo[h] && column < hi[h] ? s[e] * scale_log2 : -INFINITY;
  }
}

// At d 128 a consumer thread holds S (64 registers), P (32) and O (64), more than the 168 that 384
// threads get: the producer warpgroup hands registers over (setmaxnreg, key_pipeline.cuh); at d 64
// they fit, and nothing changes hands.
template <int D>
__device__ __forceinline__ void forward_producer_registers() {
  if constexpr (D > 64) producer_gives_registers();
}
template <int D>
__device__ __forceinline__ void forward_consumer_registers() {
  if constexpr (D > 64) consumer_takes_registers();
}
// The warpgroup's 64 query rows [row0, row0 + 64) of q ([N, D] bf16) into q_tile (D / 64 swizzled
// column blocks of [64 x 64], 8,192 bytes apart), rows past N zero-filled; nothing when row0 ≥ N.
// Then in place for the warpgroup's products.
template <int D>
__device__ __forceinline__ void load_query_tile(int wg, unsigned char* q_tile, const __nv_bfloat16* q, int row0, int n) {
  if (row0 < n) {
#pragma unroll
    for (int b = 0; b < D / 64; ++b)
      load_tile_by<128>(threadIdx.x % 128, q_tile + b * 64 * 128, q + static_cast<size_t>(row0) * D + 64 * b, 64,
                        n - row0, D);
  }
  cp_async_commit();
  cp_async_wait_all();
  fence_shared_to_async();
  warpgroup_sync(wg);
}

// Keeps ptxas from hoisting the next wgmma.wait_group above the computation of (a, b).  ptxas
// moves a wait up to the start of its basic block (a wait has no register inputs), which put
// "wait<0>" (P V done) before the exponentials and serialised them with P V.  It does not move a
// wait above a shared-memory store, so: a store of (a, b), predicated on `count < 0`, which never
// holds (count is a tile count; the asm hides that from the compiler, so the store stays).  Cost:
// a compare and a predicated-off store per tile.
__device__ __forceinline__ void hold_wait_below(float a, float b, int count, float* never_written) {
  int opaque;
  asm volatile("mov.b32 %0, %1;\n" : "=r"(opaque) : "r"(count));
  if (opaque < 0)
    asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(shared_address(never_written)), "f"(a), "f"(b)
                 : "memory");
}

// A warpgroup's walk over the block's key tiles 0 .. tiles − 1 (the ring `st`, filled in that
// order by the producer warpgroup): it multiplies tiles [begin, end) (its band; empty when begin ≥ end)
// and only waits for and releases the others, so that every consumer warp releases every tile once
// and in order (key_pipeline.cuh).
//
//   O = Σ_i P_i V_i,  P_i = 2^(S_i − m_i) (rows rescaled as m grows),  S_i = Q K_iᵀ · scale · log2 e.
//
// Pipeline (FlashAttention-3's intra-warpgroup overlap): step i queues S_i and then P_{i−1} V_{i−1}
// on the tensor cores and runs the softmax of S_i while P_{i−1} V_{i−1} is still in flight (the
// other consumer warpgroup's products fill the tensor cores while this one masks and reduces).
// Registers: S (fp32, Keys/2) for the tile being scored, P (bf16 pairs, Keys/4) for the tile being
// accumulated, O (fp32, D/2).
//
//   prologue  wait K/V_b;  issue S_b;                            wait<0>;  softmax S_b -> P_b
//   step i    wait K/V_i;  issue S_i;  issue O += P_{i−1} V_{i−1};
//             wait<1>  (S_i done; P V may run)   mask, max, exp2 of S_i      [overlaps P V]
//             wait<0>  (P V done: O and P free)  release tile i − 1; O *= alpha_i; P_i = bf16(S_i)
//   epilogue  issue O += P_{e−1} V_{e−1};  wait<0>;  release tile e − 1
//
// wgmma.fence before each issue (registers of S, P and O were written by the threads since the
// last products); fence_registers after each wait pins the compiler's reads of those registers
// below it; hold_wait_below keeps ptxas from hoisting wait<0> above the exponentials (check with
// cuobjdump -sass: WARPGROUP.DEPBAR.LE gsb0, 0x1, the MUFU.EX2 of the tile, then ..., 0x0).
//
// turns (key_pipeline.cuh): with turns.on, every issue above (prologue, steps, epilogue) waits for
// the warpgroup's turn and passes it on after the last wgmma of the issue.
template <int Stages, int Keys, int D, class Mask>
__device__ void attend_band(OnlineSoftmax<Keys, D>& softmax, KeyValueStages<Stages, Keys, D>& st, uint64_t q_desc,
                            int begin, int end, int tiles, float scale_log2, const Mask& mask,
                            const WarpgroupTurns& turns = WarpgroupTurns{false, 0}) {
  begin = max(0, min(begin, tiles));
  end = max(begin, min(end, tiles));
  for (int i = 0; i < begin; ++i) {
    wait_tile(st, i);
    release_tile(st, i);
  }
  if (begin < end) {
    float s[Keys / 2];
    uint32_t p[Keys / 16][4];
    float alpha[2];
    turns.start();
    wait_tile(st, begin);
    turns.wait_turn();
    fence();
    issue_scores<Keys, D>(s, q_desc, st.slot[begin % Stages].k);
    turns.pass_turn();
    wait<0>();
    fence_registers(s);
    scale_and_mask<Keys>(s, mask, begin, scale_log2);
    softmax.absorb(s, alpha);
    softmax.rescale(alpha);
    to_fragments<Keys>(s, p);
    for (int i = begin + 1; i < end; ++i) {
      wait_tile(st, i);
      turns.wait_turn();
      fence();
      issue_scores<Keys, D>(s, q_desc, st.slot[i % Stages].k);
      issue_values<Keys, D>(softmax.acc, p, st.slot[(i - 1) % Stages].v);
      turns.pass_turn();
      wait<1>();
      fence_registers(s);
      scale_and_mask<Keys>(s, mask, i, scale_log2);
      softmax.absorb(s, alpha);
      hold_wait_below(softmax.l[0], softmax.l[1], tiles, st.never_written);  // l: after every exp2
      wait<0>();
      fence_registers(softmax.acc);
      fence_registers(p);
      release_tile(st, i - 1);
      softmax.rescale(alpha);
      to_fragments<Keys>(s, p);
    }
    turns.wait_turn();
    fence();
    issue_values<Keys, D>(softmax.acc, p, st.slot[(end - 1) % Stages].v);
    turns.pass_turn();
    wait<0>();
    fence_registers(softmax.acc);
    fence_registers(p);
    release_tile(st, end - 1);
  }
  for (int i = end; i < tiles; ++i) {
    wait_tile(st, i);
    release_tile(st, i);
  }
}
#endif

}  // namespace mixlab::cuda::sm90
