// Flash-style attention kernels for the two sparse masks mixlab needs, forward and backward.
//
//   sliding window:  o_t = Σ_{s ∈ (t-W, t]} softmax_s(q_t·k_s·scale) v_s
//   checkpoint:      o_t = [e^{s_tt} v_t + Σ_{c < ⌊t/S⌋} e^{s_tc} v_c] / [e^{s_tt} + Σ_{c < ⌊t/S⌋} e^{s_tc}]
//                    (k_c, v_c = compressed checkpoints, rows cS+S-1 of the full k, v; s_tj = q_t·k_j·scale)
//
// Both are FlashAttention-2 loops: a block owns a tile of rows, walks only the key tiles that the
// mask can reach (so time is linear in N for the window and N²/S for checkpoints), keeps the
// running max m, sum l and output acc in registers, and masks element-wise only in tiles that
// straddle the mask's edge.  The checkpoint kernel seeds (m, l, acc) with the self item
// (m = s_tt, l = 1, acc = v_t) before the loop (docs/schemes.md, "A fused kernel"), so no mask is ever built.
//
// Backward (P = exp(S - lse), D_t = Σ_d dO_t·O_t, dS = P ∘ (dP - D)):
//   dV = Pᵀ dO,  dP = dO Vᵀ,  dK = dSᵀ Q · scale,  dQ = dS K · scale
// split in two kernels: one per key tile (dK, dV; loops over the query tiles that see it), one per
// query tile (dQ; loops over key tiles), so no atomics are needed.  With checkpoints, lse and D
// are those of the full softmax (self item included), which is what makes the checkpoint-branch
// gradients right (docs/schemes.md, "A fused kernel"); the self item's own gradients
//   dS_tt = P_tt (dO_t·v_t - D_t):  dq_t += dS_tt k_t scale,  dk_t += dS_tt q_t scale,  dv_t += P_tt dO_t
// are added in the dQ kernel's epilogue, which also scatters the checkpoint branch's dK_c, dV_c
// back to rows cS+S-1 and so writes the complete dk and dv.
//
// All exponentials are base 2 with log2(e) folded into the scale.

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include <type_traits>

#include "attention/cuda/launch.h"
#include "attention/cuda/mma_tiles.cuh"

namespace mixlab::cuda::detail {
namespace {

using namespace tiles;
constexpr float kLog2e = 1.4426950408889634f;

// ------------------------------------------------------------------------------------ the masks

struct SlidingWindow {
  int window;
  __device__ bool allowed(int t, int s) const { return s <= t && s > t - window; }
  // Keys that query rows [t0, t1) can see: [first, last).
  __device__ void keys_for(int t0, int t1, int n_keys, int& first, int& last) const {
    first = max(0, t0 - window + 1);
    last = min(n_keys, t1);
  }
  // Queries that can see key rows [s0, s1): [first, last).
  __device__ void queries_for(int s0, int s1, int n, int& first, int& last) const {
    first = s0;
    last = min(n, s1 - 1 + window);
  }
  // Every (t, s) of rows [t0, t1) x keys [s0, s1) allowed.
  __device__ bool tile_full(int t0, int t1, int s0, int s1) const {
    return s1 - 1 <= t0 && s0 > t1 - 1 - window;
  }
};

struct Checkpoints {
  int segment;
  __device__ bool allowed(int t, int c) const { return c < t / segment; }  // cS+S-1 < t
  __device__ void keys_for(int t0, int t1, int n_keys, int& first, int& last) const {
    first = 0;
    last = t1 > 0 ? min(n_keys, (t1 - 1) / segment) : 0;
  }
  __device__ void queries_for(int c0, int c1, int n, int& first, int& last) const {
    first = (c0 + 1) * segment;
    last = n;
  }
  __device__ bool tile_full(int t0, int t1, int c0, int c1) const { return c1 - 1 < t0 / segment; }
};

template <class M>
constexpr bool kHasSelf = std::is_same_v<M, Checkpoints>;

template <class T>
__device__ __forceinline__ float2 load2(const T* p) {
  const uint32_t raw = *reinterpret_cast<const uint32_t*>(p);
  const T* e = reinterpret_cast<const T*>(&raw);
  return make_float2(to_float(e[0]), to_float(e[1]));
}
template <class T>
__device__ __forceinline__ void store2(T* p, float a, float b) {
  *reinterpret_cast<uint32_t*>(p) = pack2<T>(a, b);
}

// Where (batch, head) bh = b·H + h of an operand starts (launch.h, RowStrides).
__device__ __forceinline__ int64_t head_base(RowStrides s, int bh, int heads) {
  return (bh / heads) * s.batch + (bh % heads) * s.head;
}

// ------------------------------------------------------------------------------------ forward

template <class T, int HD, int NW, int BN, class M, int MIN_BLOCKS = 1>
__global__ void __launch_bounds__(NW * 32, MIN_BLOCKS)
    forward_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                   const T* __restrict__ k_self, const T* __restrict__ v_self, T* __restrict__ out,
                   float* __restrict__ lse, int n, int n_keys, float scale_log2, M mask, AttentionLayout lay) {
  constexpr int BM = 16 * NW, NT = NW * 32;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* qs = reinterpret_cast<T*>(smem_raw);  // [BM, HD]
  T* ks = qs + BM * HD;                    // [2][BN, HD]
  T* vs = ks + 2 * BN * HD;                // [2][BN, HD]

  const int bh = blockIdx.y;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * BM;  // heaviest tiles (checkpoints) first
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
  q += head_base(lay.q, bh, lay.heads);
  k += head_base(lay.k, bh, lay.heads);
  v += head_base(lay.v, bh, lay.heads);

  int kfirst, klast;
  mask.keys_for(q0, min(n, q0 + BM), n_keys, kfirst, klast);
  const int kt0 = kfirst / BN, kt1 = klast > kfirst ? (klast + BN - 1) / BN : kt0;

  load_tile<HD, BM, NT>(qs, q, q0, n, lay.q.row);
  if (kt0 < kt1) {
    load_tile<HD, BN, NT>(ks, k, kt0 * BN, n_keys, lay.k.row);
    load_tile<HD, BN, NT>(vs, v, kt0 * BN, n_keys, lay.v.row);
  }
  cp_async_commit();

  const int row_lo = q0 + warp * 16 + g, row_hi = row_lo + 8;
  float m_lo = -INFINITY, m_hi = -INFINITY, l_lo = 0.f, l_hi = 0.f;
  float acc[HD / 8][4];
#pragma unroll
  for (int dt = 0; dt < HD / 8; ++dt) acc[dt][0] = acc[dt][1] = acc[dt][2] = acc[dt][3] = 0.f;

  cp_async_wait_all();
  __syncthreads();
  uint32_t qf[HD / 16][4];
#pragma unroll
  for (int kk = 0; kk < HD / 16; ++kk) load_a<HD>(qf[kk], qs, warp * 16, kk * 16);
  if constexpr (kHasSelf<M>) {  // seed the online softmax with the self item (q from shared memory)
    const T* kf = k_self + head_base(lay.k_self, bh, lay.heads);
    const T* vf = v_self + head_base(lay.v_self, bh, lay.heads);
    const int r_lo = warp * 16 + g, r_hi = r_lo + 8;
    float dot_lo = 0.f, dot_hi = 0.f;
#pragma unroll
    for (int dt = 0; dt < HD / 8; ++dt) {
      const int col = dt * 8 + 2 * c;
      if (row_lo < n) {
        const float2 a = load2(qs + swz<HD>(r_lo, col)), b = load2(kf + row_lo * lay.k_self.row + col);
        const float2 w = load2(vf + row_lo * lay.v_self.row + col);
        dot_lo += a.x * b.x + a.y * b.y;
        acc[dt][0] = w.x;
        acc[dt][1] = w.y;
      }
      if (row_hi < n) {
        const float2 a = load2(qs + swz<HD>(r_hi, col)), b = load2(kf + row_hi * lay.k_self.row + col);
        const float2 w = load2(vf + row_hi * lay.v_self.row + col);
        dot_hi += a.x * b.x + a.y * b.y;
        acc[dt][2] = w.x;
        acc[dt][3] = w.y;
      }
    }
    dot_lo = quad_sum(dot_lo);
    dot_hi = quad_sum(dot_hi);
    if (row_lo < n) { m_lo = dot_lo * scale_log2; l_lo = c == 0 ? 1.f : 0.f; }
    if (row_hi < n) { m_hi = dot_hi * scale_log2; l_hi = c == 0 ? 1.f : 0.f; }
  }


  for (int kt = kt0; kt < kt1; ++kt) {
    const int buf = (kt - kt0) & 1;
    cp_async_wait_all();
    __syncthreads();
    if (kt + 1 < kt1) {
      load_tile<HD, BN, NT>(ks + (buf ^ 1) * BN * HD, k, (kt + 1) * BN, n_keys, lay.k.row);
      load_tile<HD, BN, NT>(vs + (buf ^ 1) * BN * HD, v, (kt + 1) * BN, n_keys, lay.v.row);
    }
    cp_async_commit();
    const T* kb = ks + buf * BN * HD;
    const T* vb = vs + buf * BN * HD;

    float s[BN / 8][4];
#pragma unroll
    for (int nt = 0; nt < BN / 8; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
#pragma unroll
      for (int nt2 = 0; nt2 < BN / 16; ++nt2) {
        uint32_t b[4];
        load_b_nk<HD>(b, kb, nt2 * 16, kk * 16);
        mma16816<T>(s[2 * nt2], qf[kk], b[0], b[1]);
        mma16816<T>(s[2 * nt2 + 1], qf[kk], b[2], b[3]);
      }
    }

    const int s0 = kt * BN;
    const bool full = mask.tile_full(q0, q0 + BM, s0, s0 + BN) && s0 + BN <= n_keys;
    float mx_lo = -INFINITY, mx_hi = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < BN / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[nt][e] * scale_log2;
        if (!full) {
          const int t = e < 2 ? row_lo : row_hi, key = s0 + nt * 8 + 2 * c + (e & 1);
          if (!(key < n_keys && mask.allowed(t, key))) x = -INFINITY;
        }
        s[nt][e] = x;
      }
      mx_lo = fmaxf(mx_lo, fmaxf(s[nt][0], s[nt][1]));
      mx_hi = fmaxf(mx_hi, fmaxf(s[nt][2], s[nt][3]));
    }
    mx_lo = quad_max(mx_lo);
    mx_hi = quad_max(mx_hi);
    const float mn_lo = fmaxf(m_lo, mx_lo), mn_hi = fmaxf(m_hi, mx_hi);
    const float mu_lo = mn_lo == -INFINITY ? 0.f : mn_lo, mu_hi = mn_hi == -INFINITY ? 0.f : mn_hi;
    const float alpha_lo = exp2f(m_lo - mu_lo), alpha_hi = exp2f(m_hi - mu_hi);
    m_lo = mn_lo;
    m_hi = mn_hi;
    l_lo *= alpha_lo;
    l_hi *= alpha_hi;
#pragma unroll
    for (int dt = 0; dt < HD / 8; ++dt) {
      acc[dt][0] *= alpha_lo;
      acc[dt][1] *= alpha_lo;
      acc[dt][2] *= alpha_hi;
      acc[dt][3] *= alpha_hi;
    }
#pragma unroll
    for (int nt = 0; nt < BN / 8; ++nt) {
      s[nt][0] = exp2f(s[nt][0] - mu_lo);
      s[nt][1] = exp2f(s[nt][1] - mu_lo);
      s[nt][2] = exp2f(s[nt][2] - mu_hi);
      s[nt][3] = exp2f(s[nt][3] - mu_hi);
      l_lo += s[nt][0] + s[nt][1];
      l_hi += s[nt][2] + s[nt][3];
    }
#pragma unroll
    for (int kk2 = 0; kk2 < BN / 16; ++kk2) {
      const uint32_t a[4] = {pack2<T>(s[2 * kk2][0], s[2 * kk2][1]), pack2<T>(s[2 * kk2][2], s[2 * kk2][3]),
                             pack2<T>(s[2 * kk2 + 1][0], s[2 * kk2 + 1][1]),
                             pack2<T>(s[2 * kk2 + 1][2], s[2 * kk2 + 1][3])};
#pragma unroll
      for (int dt2 = 0; dt2 < HD / 16; ++dt2) {
        uint32_t b[4];
        load_b_kn<HD>(b, vb, kk2 * 16, dt2 * 16);
        mma16816<T>(acc[2 * dt2], a, b[0], b[1]);
        mma16816<T>(acc[2 * dt2 + 1], a, b[2], b[3]);
      }
    }
  }

  l_lo = quad_sum(l_lo);
  l_hi = quad_sum(l_hi);
  const float inv_lo = l_lo > 0.f ? 1.f / l_lo : 0.f, inv_hi = l_hi > 0.f ? 1.f / l_hi : 0.f;
  out += head_base(lay.out, bh, lay.heads);  // (here, not above: fewer registers live in the loop)
  lse += static_cast<size_t>(bh) * n;
#pragma unroll
  for (int dt = 0; dt < HD / 8; ++dt) {
    const int col = dt * 8 + 2 * c;
    if (row_lo < n) store2(out + row_lo * lay.out.row + col, acc[dt][0] * inv_lo, acc[dt][1] * inv_lo);
    if (row_hi < n) store2(out + row_hi * lay.out.row + col, acc[dt][2] * inv_hi, acc[dt][3] * inv_hi);
  }
  if (c == 0) {
    if (row_lo < n) lse[row_lo] = m_lo + log2f(l_lo);
    if (row_hi < n) lse[row_hi] = m_hi + log2f(l_hi);
  }
}

// ------------------------------------------------------------------------------------ backward

// D_t = Σ_d dO_td O_td, one warp per row (row = bh·n + t; delta contiguous [B·H, N]).
template <class T, int HD>
__global__ void row_dot_kernel(const T* __restrict__ dout, const T* __restrict__ out, float* __restrict__ delta,
                               long rows, int n, AttentionLayout lay) {
  const long row = static_cast<long>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  const int bh = static_cast<int>(row / n), t = static_cast<int>(row % n);
  dout += head_base(lay.dout, bh, lay.heads) + t * lay.dout.row;
  out += head_base(lay.out, bh, lay.heads) + t * lay.out.row;
  float sum = 0.f;
#pragma unroll
  for (int i = 0; i < HD / 64; ++i) {
    const int col = (i * 32 + lane) * 2;
    const float2 a = load2(dout + col), b = load2(out + col);
    sum += a.x * b.x + a.y * b.y;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (lane == 0) delta[row] = sum;
}

// dK, dV of one tile of BK = 16·NW keys; each warp owns 16 keys and computes Sᵀ (keys x queries).
template <class T, int HD, int NW, int BQ, class M>
__global__ void __launch_bounds__(NW * 32)
    backward_kv_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                       const T* __restrict__ dout, const float* __restrict__ lse,
                       const float* __restrict__ delta, T* __restrict__ dk, T* __restrict__ dv,
                       float* __restrict__ dk_f32, float* __restrict__ dv_f32, int n, int n_keys,
                       float scale_log2, float scale, M mask, AttentionLayout lay) {
  constexpr int BK = 16 * NW, NT = NW * 32;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* ks = reinterpret_cast<T*>(smem_raw);  // [BK, HD]
  T* vs = ks + BK * HD;                    // [BK, HD]
  T* qs = vs + BK * HD;                    // [2][BQ, HD]
  T* dos = qs + 2 * BQ * HD;               // [2][BQ, HD]
  float* lse_s = reinterpret_cast<float*>(dos + 2 * BQ * HD);  // [2][BQ]
  float* delta_s = lse_s + 2 * BQ;                              // [2][BQ]

  const int bh = blockIdx.y, s0 = blockIdx.x * BK;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
  const size_t row_base = static_cast<size_t>(bh) * n, key_base = static_cast<size_t>(bh) * n_keys;
  q += head_base(lay.q, bh, lay.heads);
  dout += head_base(lay.dout, bh, lay.heads);
  lse += row_base;
  delta += row_base;
  k += head_base(lay.k, bh, lay.heads);
  v += head_base(lay.v, bh, lay.heads);
  dk += head_base(lay.dk, bh, lay.heads);  // sliding window: dk, dv rows are the key rows
  dv += head_base(lay.dv, bh, lay.heads);

  int tfirst, tlast;
  mask.queries_for(s0, min(n_keys, s0 + BK), n, tfirst, tlast);
  const int qt0 = tfirst / BQ, qt1 = tlast > tfirst ? (tlast + BQ - 1) / BQ : qt0;

  auto load_queries = [&](int qt, int buf) {
    load_tile<HD, BQ, NT>(qs + buf * BQ * HD, q, qt * BQ, n, lay.q.row);
    load_tile<HD, BQ, NT>(dos + buf * BQ * HD, dout, qt * BQ, n, lay.dout.row);
    for (int i = threadIdx.x; i < BQ; i += NT) {
      const int t = qt * BQ + i;
      lse_s[buf * BQ + i] = t < n ? lse[t] : 0.f;
      delta_s[buf * BQ + i] = t < n ? delta[t] : 0.f;
    }
  };
  load_tile<HD, BK, NT>(ks, k, s0, n_keys, lay.k.row);
  load_tile<HD, BK, NT>(vs, v, s0, n_keys, lay.v.row);
  if (qt0 < qt1) load_queries(qt0, 0);
  cp_async_commit();

  float dk_acc[HD / 8][4], dv_acc[HD / 8][4];
#pragma unroll
  for (int dt = 0; dt < HD / 8; ++dt)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk_acc[dt][e] = dv_acc[dt][e] = 0.f;
  const int key_lo = s0 + warp * 16 + g, key_hi = key_lo + 8;

  for (int qt = qt0; qt < qt1; ++qt) {
    const int buf = (qt - qt0) & 1;
    cp_async_wait_all();
    __syncthreads();
    if (qt + 1 < qt1) load_queries(qt + 1, buf ^ 1);
    cp_async_commit();
    const T* qb = qs + buf * BQ * HD;
    const T* db = dos + buf * BQ * HD;
    const float* lb = lse_s + buf * BQ;
    const float* deb = delta_s + buf * BQ;

    float st[BQ / 8][4], dp[BQ / 8][4];
#pragma unroll
    for (int nt = 0; nt < BQ / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) st[nt][e] = dp[nt][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      uint32_t ak[4], av[4];
      load_a<HD>(ak, ks, warp * 16, kk * 16);
      load_a<HD>(av, vs, warp * 16, kk * 16);
#pragma unroll
      for (int nt2 = 0; nt2 < BQ / 16; ++nt2) {
        uint32_t b[4];
        load_b_nk<HD>(b, qb, nt2 * 16, kk * 16);  // Sᵀ = K Qᵀ
        mma16816<T>(st[2 * nt2], ak, b[0], b[1]);
        mma16816<T>(st[2 * nt2 + 1], ak, b[2], b[3]);
        load_b_nk<HD>(b, db, nt2 * 16, kk * 16);  // dPᵀ = V dOᵀ
        mma16816<T>(dp[2 * nt2], av, b[0], b[1]);
        mma16816<T>(dp[2 * nt2 + 1], av, b[2], b[3]);
      }
    }

    const int t0 = qt * BQ;
    const bool full = mask.tile_full(t0, t0 + BQ, s0, s0 + BK) && t0 + BQ <= n;
#pragma unroll
    for (int nt = 0; nt < BQ / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = nt * 8 + 2 * c + (e & 1);
        float p = exp2f(st[nt][e] * scale_log2 - lb[col]);
        if (!full) {
          const int t = t0 + col, key = e < 2 ? key_lo : key_hi;
          if (!(t < n && mask.allowed(t, key))) p = 0.f;
        }
        st[nt][e] = p;                       // Pᵀ
        dp[nt][e] = p * (dp[nt][e] - deb[col]);  // dSᵀ
      }
    }
#pragma unroll
    for (int kk2 = 0; kk2 < BQ / 16; ++kk2) {
      const uint32_t ap[4] = {pack2<T>(st[2 * kk2][0], st[2 * kk2][1]), pack2<T>(st[2 * kk2][2], st[2 * kk2][3]),
                              pack2<T>(st[2 * kk2 + 1][0], st[2 * kk2 + 1][1]),
                              pack2<T>(st[2 * kk2 + 1][2], st[2 * kk2 + 1][3])};
      const uint32_t as[4] = {pack2<T>(dp[2 * kk2][0], dp[2 * kk2][1]), pack2<T>(dp[2 * kk2][2], dp[2 * kk2][3]),
                              pack2<T>(dp[2 * kk2 + 1][0], dp[2 * kk2 + 1][1]),
                              pack2<T>(dp[2 * kk2 + 1][2], dp[2 * kk2 + 1][3])};
#pragma unroll
      for (int dt2 = 0; dt2 < HD / 16; ++dt2) {
        uint32_t b[4];
        load_b_kn<HD>(b, db, kk2 * 16, dt2 * 16);  // dV += Pᵀ dO
        mma16816<T>(dv_acc[2 * dt2], ap, b[0], b[1]);
        mma16816<T>(dv_acc[2 * dt2 + 1], ap, b[2], b[3]);
        load_b_kn<HD>(b, qb, kk2 * 16, dt2 * 16);  // dK += dSᵀ Q
        mma16816<T>(dk_acc[2 * dt2], as, b[0], b[1]);
        mma16816<T>(dk_acc[2 * dt2 + 1], as, b[2], b[3]);
      }
    }
  }

#pragma unroll
  for (int dt = 0; dt < HD / 8; ++dt) {
    const int col = dt * 8 + 2 * c;
    if constexpr (kHasSelf<M>) {  // float32 scratch, combined with the self term later
      if (key_lo < n_keys) {
        *reinterpret_cast<float2*>(dk_f32 + (key_base + key_lo) * HD + col) = make_float2(dk_acc[dt][0] * scale, dk_acc[dt][1] * scale);
        *reinterpret_cast<float2*>(dv_f32 + (key_base + key_lo) * HD + col) = make_float2(dv_acc[dt][0], dv_acc[dt][1]);
      }
      if (key_hi < n_keys) {
        *reinterpret_cast<float2*>(dk_f32 + (key_base + key_hi) * HD + col) = make_float2(dk_acc[dt][2] * scale, dk_acc[dt][3] * scale);
        *reinterpret_cast<float2*>(dv_f32 + (key_base + key_hi) * HD + col) = make_float2(dv_acc[dt][2], dv_acc[dt][3]);
      }
    } else {
      if (key_lo < n_keys) {
        store2(dk + key_lo * lay.dk.row + col, dk_acc[dt][0] * scale, dk_acc[dt][1] * scale);
        store2(dv + key_lo * lay.dv.row + col, dv_acc[dt][0], dv_acc[dt][1]);
      }
      if (key_hi < n_keys) {
        store2(dk + key_hi * lay.dk.row + col, dk_acc[dt][2] * scale, dk_acc[dt][3] * scale);
        store2(dv + key_hi * lay.dv.row + col, dv_acc[dt][2], dv_acc[dt][3]);
      }
    }
  }
}

// dQ of one tile of BM = 16·NW query rows; each warp owns 16 rows.
template <class T, int HD, int NW, int BN, class M>
__global__ void __launch_bounds__(NW * 32)
    backward_q_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                      const T* __restrict__ k_self, const T* __restrict__ v_self,
                      const T* __restrict__ dout, const float* __restrict__ lse,
                      const float* __restrict__ delta, T* __restrict__ dq, T* __restrict__ dk,
                      T* __restrict__ dv, const float* __restrict__ dk_f32, const float* __restrict__ dv_f32,
                      int n, int n_keys, float scale_log2, float scale, M mask, AttentionLayout lay) {
  constexpr int BM = 16 * NW, NT = NW * 32;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* qs = reinterpret_cast<T*>(smem_raw);  // [BM, HD]
  T* dos = qs + BM * HD;                   // [BM, HD]
  T* ks = dos + BM * HD;                   // [2][BN, HD]
  T* vs = ks + 2 * BN * HD;                // [2][BN, HD]

  const int bh = blockIdx.y;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * BM;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
  const size_t row_base = static_cast<size_t>(bh) * n, key_base = static_cast<size_t>(bh) * n_keys;
  q += head_base(lay.q, bh, lay.heads);
  dout += head_base(lay.dout, bh, lay.heads);
  dq += head_base(lay.dq, bh, lay.heads);
  lse += row_base;
  delta += row_base;
  k += head_base(lay.k, bh, lay.heads);
  v += head_base(lay.v, bh, lay.heads);

  int kfirst, klast;
  mask.keys_for(q0, min(n, q0 + BM), n_keys, kfirst, klast);
  const int kt0 = kfirst / BN, kt1 = klast > kfirst ? (klast + BN - 1) / BN : kt0;

  load_tile<HD, BM, NT>(qs, q, q0, n, lay.q.row);
  load_tile<HD, BM, NT>(dos, dout, q0, n, lay.dout.row);
  if (kt0 < kt1) {
    load_tile<HD, BN, NT>(ks, k, kt0 * BN, n_keys, lay.k.row);
    load_tile<HD, BN, NT>(vs, v, kt0 * BN, n_keys, lay.v.row);
  }
  cp_async_commit();

  const int row_lo = q0 + warp * 16 + g, row_hi = row_lo + 8;
  const float lse_lo = row_lo < n ? lse[row_lo] : 0.f, lse_hi = row_hi < n ? lse[row_hi] : 0.f;
  const float d_lo = row_lo < n ? delta[row_lo] : 0.f, d_hi = row_hi < n ? delta[row_hi] : 0.f;
  float acc[HD / 8][4];
#pragma unroll
  for (int dt = 0; dt < HD / 8; ++dt) acc[dt][0] = acc[dt][1] = acc[dt][2] = acc[dt][3] = 0.f;

  cp_async_wait_all();
  __syncthreads();
  uint32_t qf[HD / 16][4], df[HD / 16][4];
#pragma unroll
  for (int kk = 0; kk < HD / 16; ++kk) {
    load_a<HD>(qf[kk], qs, warp * 16, kk * 16);
    load_a<HD>(df[kk], dos, warp * 16, kk * 16);
  }

  for (int kt = kt0; kt < kt1; ++kt) {
    const int buf = (kt - kt0) & 1;
    cp_async_wait_all();
    __syncthreads();
    if (kt + 1 < kt1) {
      load_tile<HD, BN, NT>(ks + (buf ^ 1) * BN * HD, k, (kt + 1) * BN, n_keys, lay.k.row);
      load_tile<HD, BN, NT>(vs + (buf ^ 1) * BN * HD, v, (kt + 1) * BN, n_keys, lay.v.row);
    }
    cp_async_commit();
    const T* kb = ks + buf * BN * HD;
    const T* vb = vs + buf * BN * HD;

    float s[BN / 8][4], dp[BN / 8][4];
#pragma unroll
    for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[nt][e] = dp[nt][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
#pragma unroll
      for (int nt2 = 0; nt2 < BN / 16; ++nt2) {
        uint32_t b[4];
        load_b_nk<HD>(b, kb, nt2 * 16, kk * 16);  // S = Q Kᵀ
        mma16816<T>(s[2 * nt2], qf[kk], b[0], b[1]);
        mma16816<T>(s[2 * nt2 + 1], qf[kk], b[2], b[3]);
        load_b_nk<HD>(b, vb, nt2 * 16, kk * 16);  // dP = dO Vᵀ
        mma16816<T>(dp[2 * nt2], df[kk], b[0], b[1]);
        mma16816<T>(dp[2 * nt2 + 1], df[kk], b[2], b[3]);
      }
    }
    const int s0 = kt * BN;
    const bool full = mask.tile_full(q0, q0 + BM, s0, s0 + BN) && s0 + BN <= n_keys;
#pragma unroll
    for (int nt = 0; nt < BN / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const bool lo = e < 2;
        float p = exp2f(s[nt][e] * scale_log2 - (lo ? lse_lo : lse_hi));
        if (!full) {
          const int t = lo ? row_lo : row_hi, key = s0 + nt * 8 + 2 * c + (e & 1);
          if (!(t < n && key < n_keys && mask.allowed(t, key))) p = 0.f;
        }
        s[nt][e] = p * (dp[nt][e] - (lo ? d_lo : d_hi));  // dS
      }
    }
#pragma unroll
    for (int kk2 = 0; kk2 < BN / 16; ++kk2) {
      const uint32_t a[4] = {pack2<T>(s[2 * kk2][0], s[2 * kk2][1]), pack2<T>(s[2 * kk2][2], s[2 * kk2][3]),
                             pack2<T>(s[2 * kk2 + 1][0], s[2 * kk2 + 1][1]),
                             pack2<T>(s[2 * kk2 + 1][2], s[2 * kk2 + 1][3])};
#pragma unroll
      for (int dt2 = 0; dt2 < HD / 16; ++dt2) {
        uint32_t b[4];
        load_b_kn<HD>(b, kb, kk2 * 16, dt2 * 16);  // dQ += dS K
        mma16816<T>(acc[2 * dt2], a, b[0], b[1]);
        mma16816<T>(acc[2 * dt2 + 1], a, b[2], b[3]);
      }
    }
  }

  if constexpr (kHasSelf<M>) {
    // Self item of rows t: dS_tt = P_tt (dO_t·v_t - D_t);  dq_t += dS_tt k_t,  and the complete
    // dk_t = dS_tt q_t scale (+ dK_c on checkpoint rows t = cS+S-1),  dv_t = P_tt dO_t (+ dV_c).
    // q_t and dO_t come from shared memory; dK_c, dV_c from the dK/dV kernel (run before this one).
    const T* kf = k_self + head_base(lay.k_self, bh, lay.heads);
    const T* vf = v_self + head_base(lay.v_self, bh, lay.heads);
    T* dk_rows = dk + head_base(lay.dk, bh, lay.heads);
    T* dv_rows = dv + head_base(lay.dv, bh, lay.heads);
    const int r_lo = warp * 16 + g, r_hi = r_lo + 8;
    float s_lo = 0.f, s_hi = 0.f, dp_lo = 0.f, dp_hi = 0.f;
#pragma unroll
    for (int dt = 0; dt < HD / 8; ++dt) {
      const int col = dt * 8 + 2 * c;
      if (row_lo < n) {
        const float2 a = load2(qs + swz<HD>(r_lo, col)), b = load2(kf + row_lo * lay.k_self.row + col),
                     w = load2(vf + row_lo * lay.v_self.row + col),
                     d = load2(dos + swz<HD>(r_lo, col));
        s_lo += a.x * b.x + a.y * b.y;
        dp_lo += d.x * w.x + d.y * w.y;
      }
      if (row_hi < n) {
        const float2 a = load2(qs + swz<HD>(r_hi, col)), b = load2(kf + row_hi * lay.k_self.row + col),
                     w = load2(vf + row_hi * lay.v_self.row + col),
                     d = load2(dos + swz<HD>(r_hi, col));
        s_hi += a.x * b.x + a.y * b.y;
        dp_hi += d.x * w.x + d.y * w.y;
      }
    }
    s_lo = quad_sum(s_lo);
    s_hi = quad_sum(s_hi);
    dp_lo = quad_sum(dp_lo);
    dp_hi = quad_sum(dp_hi);
    const float p_lo = exp2f(s_lo * scale_log2 - lse_lo), p_hi = exp2f(s_hi * scale_log2 - lse_hi);
    const float ds_lo = p_lo * (dp_lo - d_lo), ds_hi = p_hi * (dp_hi - d_hi);
    const int segment = mask.segment;
    const bool ck_lo = row_lo % segment == segment - 1 && row_lo / segment < n_keys;
    const bool ck_hi = row_hi % segment == segment - 1 && row_hi / segment < n_keys;
#pragma unroll
    for (int dt = 0; dt < HD / 8; ++dt) {
      const int col = dt * 8 + 2 * c;
      if (row_lo < n) {
        const float2 b = load2(kf + row_lo * lay.k_self.row + col), a = load2(qs + swz<HD>(r_lo, col)),
                     d = load2(dos + swz<HD>(r_lo, col));
        acc[dt][0] += ds_lo * b.x;
        acc[dt][1] += ds_lo * b.y;
        float2 gk = make_float2(ds_lo * scale * a.x, ds_lo * scale * a.y), gv = make_float2(p_lo * d.x, p_lo * d.y);
        if (ck_lo) {
          const size_t oc = (key_base + row_lo / segment) * HD + col;
          const float2 x = *reinterpret_cast<const float2*>(dk_f32 + oc), y = *reinterpret_cast<const float2*>(dv_f32 + oc);
          gk.x += x.x; gk.y += x.y; gv.x += y.x; gv.y += y.y;
        }
        store2(dk_rows + row_lo * lay.dk.row + col, gk.x, gk.y);
        store2(dv_rows + row_lo * lay.dv.row + col, gv.x, gv.y);
      }
      if (row_hi < n) {
        const float2 b = load2(kf + row_hi * lay.k_self.row + col), a = load2(qs + swz<HD>(r_hi, col)),
                     d = load2(dos + swz<HD>(r_hi, col));
        acc[dt][2] += ds_hi * b.x;
        acc[dt][3] += ds_hi * b.y;
        float2 gk = make_float2(ds_hi * scale * a.x, ds_hi * scale * a.y), gv = make_float2(p_hi * d.x, p_hi * d.y);
        if (ck_hi) {
          const size_t oc = (key_base + row_hi / segment) * HD + col;
          const float2 x = *reinterpret_cast<const float2*>(dk_f32 + oc), y = *reinterpret_cast<const float2*>(dv_f32 + oc);
          gk.x += x.x; gk.y += x.y; gv.x += y.x; gv.y += y.y;
        }
        store2(dk_rows + row_hi * lay.dk.row + col, gk.x, gk.y);
        store2(dv_rows + row_hi * lay.dv.row + col, gv.x, gv.y);
      }
    }
  }
#pragma unroll
  for (int dt = 0; dt < HD / 8; ++dt) {
    const int col = dt * 8 + 2 * c;
    if (row_lo < n) store2(dq + row_lo * lay.dq.row + col, acc[dt][0] * scale, acc[dt][1] * scale);
    if (row_hi < n) store2(dq + row_hi * lay.dq.row + col, acc[dt][2] * scale, acc[dt][3] * scale);
  }
}

// ------------------------------------------------------------------------------------ launchers

void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("attention/cuda/flash_attention.cu: ") + what + ": " + cudaGetErrorString(err));
}

void check_launch(const char* what) { check_cuda(cudaGetLastError(), what); }

template <class Kernel>
void set_smem(Kernel kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
               "raising the dynamic shared-memory limit");
}

// Tile sizes per head dim: forward and dQ use 16-row warps; dK/dV use 16-key warps.
template <int HD> struct Tiles;
template <> struct Tiles<64> {
  static constexpr int fwd_warps = 8, fwd_bn = 64;
  static constexpr int kv_warps = 4, kv_bq = 64;
  static constexpr int q_warps = 4, q_bn = 64;
};
template <> struct Tiles<128> {
  static constexpr int fwd_warps = 8, fwd_bn = 64;
  static constexpr int kv_warps = 4, kv_bq = 32;
  static constexpr int q_warps = 4, q_bn = 32;
};

template <class T, int HD, class M>
void forward_typed(const AttentionShape& sh, M mask, const void* q, const void* k, const void* v,
                   const void* ks, const void* vs, void* out, float* lse, cudaStream_t stream) {
  using TL = Tiles<HD>;
  constexpr int BM = 16 * TL::fwd_warps;
  const size_t smem = (BM + 4 * TL::fwd_bn) * HD * sizeof(T);
  // d = 64: registers capped at 128 so that two blocks (16 warps) share an SM (docs/gpu-notes.md v5).
  auto kernel = forward_kernel<T, HD, TL::fwd_warps, TL::fwd_bn, M, HD == 64 ? 2 : 1>;
  set_smem(kernel, smem);
  const dim3 grid((sh.n + BM - 1) / BM, sh.batch_heads);
  kernel<<<grid, TL::fwd_warps * 32, smem, stream>>>(
      static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), static_cast<const T*>(ks),
      static_cast<const T*>(vs), static_cast<T*>(out), lse, sh.n, sh.n_keys, sh.scale * kLog2e, mask, sh.layout);
  check_launch("forward");
}

template <class T, int HD, class M>
void backward_typed(const AttentionShape& sh, M mask, const void* q, const void* k, const void* v,
                    const void* ks, const void* vs, const void* out, const void* dout, const float* lse,
                    float* delta, void* dq, void* dk, void* dv, float* dkc, float* dvc, cudaStream_t stream) {
  using TL = Tiles<HD>;
  const long rows = static_cast<long>(sh.batch_heads) * sh.n;
  const float scale_log2 = sh.scale * kLog2e;
  row_dot_kernel<T, HD><<<(rows + 7) / 8, 256, 0, stream>>>(static_cast<const T*>(dout), static_cast<const T*>(out), delta,
                                                             rows, sh.n, sh.layout);
  check_launch("backward row dot");

  constexpr int BK = 16 * TL::kv_warps;
  const size_t smem_kv = (2 * BK + 4 * TL::kv_bq) * HD * sizeof(T) + 4 * TL::kv_bq * sizeof(float);
  auto kv = backward_kv_kernel<T, HD, TL::kv_warps, TL::kv_bq, M>;
  set_smem(kv, smem_kv);
  if (sh.n_keys > 0) {
    const dim3 grid_kv((sh.n_keys + BK - 1) / BK, sh.batch_heads);
    kv<<<grid_kv, TL::kv_warps * 32, smem_kv, stream>>>(
        static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), static_cast<const T*>(dout), lse,
        delta, static_cast<T*>(dk), static_cast<T*>(dv), dkc, dvc, sh.n, sh.n_keys, scale_log2, sh.scale, mask,
        sh.layout);
    check_launch("backward dk dv");
  }

  constexpr int BM = 16 * TL::q_warps;
  const size_t smem_q = (2 * BM + 4 * TL::q_bn) * HD * sizeof(T);
  auto qk = backward_q_kernel<T, HD, TL::q_warps, TL::q_bn, M>;
  set_smem(qk, smem_q);
  const dim3 grid_q((sh.n + BM - 1) / BM, sh.batch_heads);
  qk<<<grid_q, TL::q_warps * 32, smem_q, stream>>>(
      static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), static_cast<const T*>(ks),
      static_cast<const T*>(vs), static_cast<const T*>(dout), lse, delta, static_cast<T*>(dq), static_cast<T*>(dk),
      static_cast<T*>(dv), dkc, dvc, sh.n, sh.n_keys, scale_log2, sh.scale, mask, sh.layout);
  check_launch("backward dq");

}

void check_head_dim(const AttentionShape& sh) {
  if (sh.head_dim != 64 && sh.head_dim != 128)
    throw std::invalid_argument("attention/cuda: head_dim " + std::to_string(sh.head_dim) + " (valid: 64, 128)");
}

template <class T, int HD>
void forward_mask(const AttentionShape& sh, const void* q, const void* k, const void* v, const void* ks,
                  const void* vs, void* out, float* lse, cudaStream_t stream) {
  if (sh.mask == Mask::sliding_window)
    forward_typed<T, HD>(sh, SlidingWindow{sh.window}, q, k, v, ks, vs, out, lse, stream);
  else
    forward_typed<T, HD>(sh, Checkpoints{sh.segment}, q, k, v, ks, vs, out, lse, stream);
}

template <class T, int HD>
void backward_mask(const AttentionShape& sh, const void* q, const void* k, const void* v, const void* ks,
                   const void* vs, const void* out, const void* dout, const float* lse, float* delta, void* dq,
                   void* dk, void* dv, float* dkc, float* dvc, cudaStream_t stream) {
  if (sh.mask == Mask::sliding_window)
    backward_typed<T, HD>(sh, SlidingWindow{sh.window}, q, k, v, ks, vs, out, dout, lse, delta, dq, dk, dv, dkc,
                          dvc, stream);
  else
    backward_typed<T, HD>(sh, Checkpoints{sh.segment}, q, k, v, ks, vs, out, dout, lse, delta, dq, dk, dv, dkc,
                          dvc, stream);
}

}  // namespace

bool attention_supported(int head_dim) { return head_dim == 64 || head_dim == 128; }

void attention_forward(const AttentionShape& sh, const void* q, const void* k, const void* v, const void* k_self,
                       const void* v_self, void* out, float* lse, void* stream_ptr) {
  auto stream = static_cast<cudaStream_t>(stream_ptr);
  check_head_dim(sh);
  if (sh.n == 0 || sh.batch_heads == 0) return;
  const bool bf16 = sh.element == Element::bf16;
  if (sh.head_dim == 64) {
    if (bf16) forward_mask<__nv_bfloat16, 64>(sh, q, k, v, k_self, v_self, out, lse, stream);
    else forward_mask<__half, 64>(sh, q, k, v, k_self, v_self, out, lse, stream);
  } else {
    if (bf16) forward_mask<__nv_bfloat16, 128>(sh, q, k, v, k_self, v_self, out, lse, stream);
    else forward_mask<__half, 128>(sh, q, k, v, k_self, v_self, out, lse, stream);
  }
}

void attention_backward(const AttentionShape& sh, const void* q, const void* k, const void* v, const void* k_self,
                        const void* v_self, const void* out, const void* dout, const float* lse, float* delta,
                        void* dq, void* dk, void* dv, float* dk_ckpt, float* dv_ckpt, void* stream_ptr) {
  auto stream = static_cast<cudaStream_t>(stream_ptr);
  check_head_dim(sh);
  if (sh.n == 0 || sh.batch_heads == 0) return;
  const bool bf16 = sh.element == Element::bf16;
#define MIXLAB_BACKWARD(T, HD)                                                                             \
  backward_mask<T, HD>(sh, q, k, v, k_self, v_self, out, dout, lse, delta, dq, dk, dv, dk_ckpt, dv_ckpt, \
                       stream)
  if (sh.head_dim == 64) {
    if (bf16) MIXLAB_BACKWARD(__nv_bfloat16, 64);
    else MIXLAB_BACKWARD(__half, 64);
  } else {
    if (bf16) MIXLAB_BACKWARD(__nv_bfloat16, 128);
    else MIXLAB_BACKWARD(__half, 128);
  }
#undef MIXLAB_BACKWARD
}

}  // namespace mixlab::cuda::detail
