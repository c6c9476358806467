#pragma once
// The backward kernel of the v2 selective scan; launched by selective_scan_v2.cu.  The
// equations are at the top of selective_scan_v2.cu.

#include <utility>

#include "mixers/cuda/selective_scan_v2_common.cuh"

namespace mixlab::cuda::detail {
namespace {

// Shared memory of the backward: float [K x kTP] tiles of the chunk's Δ, u, dy = dout·SiLU(z),
// zf = dout·SiLU'(z), and per (channel, step) sums over states of λB, g·A·log2(e), C h; the B|C
// tile; the chunk's dB|dC summed over each warp's channels [warps][kL x kRedP] (each warp writes
// every entry once per chunk: no zeroing, no shared atomics); per-channel dD and db_δ.
template <int P>
struct BackwardTiles {
  float dt[kK * kTP], x[kK * kTP], dy[kK * kTP], zf[kK * kTP];
  float lb[kK * kTP], ga[kK * kTP], yc[kK * kTP];
  alignas(16) float bc[kL * kBC];
  float red[Split<P>::kThreads / 32][kL * kRedP];
  float d_skip[kK], d_bias[kK];
};

// Stage steps [t0, t0 + kL) of channels [e0, e0 + K) (zeros outside; Δ = 0 and dy = 0 make a
// padded step a no-op for the adjoint):
//   dt = softplus(δ + b_δ), x = u, dy = dout z σ(z), zf = dout σ(z)(1 + z(1 - σ(z))).
template <int THREADS, class Tiles, class T>
__device__ __forceinline__ void stage_backward(Tiles& sm, const T* u, const T* delta, const T* z,
                                               const T* dout, const float* bias, int e0, int channels, int t0,
                                               int n) {
#pragma unroll 4
  for (int i = threadIdx.x; i < kK * kL; i += THREADS) {
    const int r = i / kL, t = i % kL, e = e0 + r, tt = t0 + t;
    const bool ok = e < channels && tt < n;
    const size_t at = static_cast<size_t>(e) * n + tt;
    const float zz = ok ? to_f(z[at]) : 0.f, go = ok ? to_f(dout[at]) : 0.f, sz = sigmoid(zz);
    sm.dt[r * kTP + t] = ok ? softplus(to_f(delta[at]) + (bias ? bias[e] : 0.f)) : 0.f;
    sm.x[r * kTP + t] = ok ? to_f(u[at]) : 0.f;
    sm.dy[r * kTP + t] = go * zz * sz;
    sm.zf[r * kTP + t] = go * sz * (1.f + zz * (1.f - sz));
  }
}

// One pass of thread (channel c, part q) over one 16-step block [tb, tb + 16) of the chunk for its
// states j = q·S + 4p + k (k < 4), from h = h0 (the saved state before the block):
//   hist[i + 1] = h after step tb + i (recomputed);  then for i = 15..0, with λ = dh[k]:
//   λ += dy C;  g = λ hist[i] e^{Δ A};  Σ_k: lb += λ B, ga += g a2, yc += C hist[i+1];
//   da[k] += g Δ;  dB_t[j] += λ Δ u,  dC_t[j] += dy hist[i+1] (summed over channels into red);
//   λ <- λ e^{Δ A}.
// lb, ga, yc are summed over the P lanes, then stored (p = 0) or added (p > 0) by lane q = 0.
template <int P, int p>
__device__ __forceinline__ void backward_block_pass(BackwardTiles<P>& sm, const float (&h0)[kGroup],
                                                    const float (&a2)[Split<P>::kStates],
                                                    float (&dh)[Split<P>::kStates], float (&da)[Split<P>::kStates],
                                                    int c, int q, int tb) {
  constexpr int S = Split<P>::kStates;
  const int lane = threadIdx.x & 31, jp = q * S + p * kGroup;  // this pass's first state
  constexpr bool keep = kKeepDecays<P>;  // decays[i] = e^{Δ A} of step tb + i, kept from the recompute
  float hist[kSave + 1][kGroup], decays[keep ? kSave : 1][kGroup];
#pragma unroll
  for (int k = 0; k < kGroup; ++k) hist[0][k] = h0[k];
#pragma unroll
  for (int i = 0; i < kSave; ++i) {
    const int t = tb + i;
    const float dt = sm.dt[c * kTP + t], dtx = dt * sm.x[c * kTP + t];
    float bv[kGroup];
    load_states(sm.bc + t * kBC, jp, bv);
#pragma unroll
    for (int k = 0; k < kGroup; ++k) {
      const float decay = exp2f(dt * a2[p * kGroup + k]);
      if constexpr (keep) decays[i][k] = decay;
      hist[i + 1][k] = decay * hist[i][k] + dtx * bv[k];
    }
  }
#pragma unroll
  for (int i = kSave - 1; i >= 0; --i) {
    const int t = tb + i;
    const float dt = sm.dt[c * kTP + t], dy = sm.dy[c * kTP + t], dtx = dt * sm.x[c * kTP + t];
    float bv[kGroup], cv[kGroup], vals[8];  // vals: this channel's dB (4 states), dC (4 states) of step t
    load_states(sm.bc + t * kBC, jp, bv);
    load_states(sm.bc + t * kBC + kScanStates, jp, cv);
    float lb = 0.f, ga = 0.f, yc = 0.f;
#pragma unroll
    for (int k = 0; k < kGroup; ++k) {
      const int s = p * kGroup + k;
      float decay;
      if constexpr (keep)
        decay = decays[i][k];
      else
        decay = exp2f(dt * a2[s]);
      dh[s] += dy * cv[k];
      const float g = dh[s] * hist[i][k] * decay;  // ∂L/∂(Δ A[j]) at step t
      yc += cv[k] * hist[i + 1][k];
      lb += dh[s] * bv[k];
      ga += g * a2[s];
      da[s] += g * dt;
      vals[k] = dh[s] * dtx;
      vals[kGroup + k] = dy * hist[i + 1][k];
      dh[s] *= decay;
    }
    const float r = channel_sum8<P>(vals, lane);
    if (channel_sum8_writer<P>(lane)) {
      const int v = (lane >> 2) & 7;  // value index channel_sum8 leaves in this lane
      const int slot = (v < kGroup ? 0 : kScanStates) + jp + (v % kGroup);
      sm.red[threadIdx.x / 32][t * kRedP + slot] = r;
    }
    lb = lane_group_sum<P>(lb);
    ga = lane_group_sum<P>(ga);
    yc = lane_group_sum<P>(yc);
    if (q == 0) {
      const int at = c * kTP + t;
      if constexpr (p == 0) {
        sm.lb[at] = lb, sm.ga[at] = ga, sm.yc[at] = yc;
      } else {
        sm.lb[at] += lb, sm.ga[at] += ga, sm.yc[at] += yc;
      }
    }
  }
}

// All passes of one 16-step block [tb, tb + 16); save: the index of the state saved after it
// (the block starts from saved state save - 1, or from 0 at the sequence's start).
template <int P, int... p>
__device__ __forceinline__ void backward_block(BackwardTiles<P>& sm, const float* my_states, int save,
                                               const float (&a2)[Split<P>::kStates], float (&dh)[Split<P>::kStates],
                                               float (&da)[Split<P>::kStates], int c, int q, int tb,
                                               std::integer_sequence<int, p...>) {
  auto pass = [&](auto pc) {
    constexpr int pp = decltype(pc)::value;
    float h0[kGroup] = {0.f, 0.f, 0.f, 0.f};
    if (my_states && save > 0) {
      const float4 s4 = *reinterpret_cast<const float4*>(my_states + static_cast<size_t>(save - 1) * kScanStates +
                                                         pp * kGroup);
      h0[0] = s4.x, h0[1] = s4.y, h0[2] = s4.z, h0[3] = s4.w;
    }
    backward_block_pass<P, pp>(sm, h0, a2, dh, da, c, q, tb);
    __syncwarp();  // keeps the passes apart in the schedule (interleaved, their registers add up)
  };
  (pass(std::integral_constant<int, p>{}), ...);
}

// After a chunk's passes: du, dδ, dz of its steps (coalesced along t: a warp takes one row), the
// per-channel sums of dD = Σ dy u and db_δ = Σ dδ, and the chunk's dB, dC into the grid's sums.
//   du = Δ lb + dy D;  dΔ = ln2·ga + u lb;  dδ = dΔ (1 - e^{-Δ});  dz = zf (yc + D u)
template <int P, class T>
__device__ __forceinline__ void unstage_backward(BackwardTiles<P>& sm, const float* D, T* du, T* ddelta, T* dz,
                                                 float* dB, float* dC, int e0, int channels, int t0, int n) {
  constexpr int THREADS = Split<P>::kThreads;
#pragma unroll 2
  for (int i = threadIdx.x; i < kK * kL; i += THREADS) {  // kL = 32: row r is one warp's
    const int r = i / kL, t = i % kL, e = e0 + r, tt = t0 + t, at = r * kTP + t;
    const bool ok = e < channels && tt < n;
    const float d = e < channels ? D[e] : 0.f, dt = sm.dt[at], x = sm.x[at], dy = sm.dy[at], lb = sm.lb[at];
    const float g_delta = ok ? (kLn2 * sm.ga[at] + x * lb) * (1.f - __expf(-dt)) : 0.f;
    if (ok) {
      const size_t g = static_cast<size_t>(e) * n + tt;
      store_f(du + g, dt * lb + dy * d);
      store_f(ddelta + g, g_delta);
      store_f(dz + g, sm.zf[at] * (sm.yc[at] + d * x));
    }
    float dd = ok ? dy * x : 0.f, db = g_delta;
#pragma unroll
    for (int m = 16; m >= 1; m /= 2) {
      dd += __shfl_xor_sync(0xffffffffu, dd, m);
      db += __shfl_xor_sync(0xffffffffu, db, m);
    }
    if ((threadIdx.x & 31) == 0) sm.d_skip[r] += dd, sm.d_bias[r] += db;  // one warp per row and chunk
  }
#pragma unroll 4
  for (int i = threadIdx.x; i < 2 * kScanStates * kL; i += THREADS) {
    const int slot = i / kL, t = i % kL, tt = t0 + t;
    if (tt < n) {
      float sum = 0.f;
#pragma unroll
      for (int w = 0; w < THREADS / 32; ++w) sum += sm.red[w][t * kRedP + slot];
      atomicAdd((slot < kScanStates ? dB : dC) + static_cast<size_t>(slot % kScanStates) * n + tt, sum);
    }
  }
}

// u, delta, z, dout, du, ddelta, dz: this sequence's [E, N];  Bm, Cm, dB, dC: its [16, N];
// states: [B, E, ceil(N/16), 16] from the forward;  dA [E, 16], dD, ddelta_bias [E] (+=).
template <class T, int P>
__global__ void __launch_bounds__(Split<P>::kThreads, kBackwardMinBlocks)
    scan_v2_backward_kernel(const T* __restrict__ u, const T* __restrict__ delta, const float* __restrict__ A,
                            const T* __restrict__ Bm, const T* __restrict__ Cm, const float* __restrict__ D,
                            const T* __restrict__ z, const float* __restrict__ delta_bias,
                            const float* __restrict__ states, const T* __restrict__ dout, T* __restrict__ du,
                            T* __restrict__ ddelta, float* __restrict__ dA, float* __restrict__ dB,
                            float* __restrict__ dC, float* __restrict__ dD, T* __restrict__ dz,
                            float* __restrict__ ddelta_bias, const float* __restrict__ dh_in, int channels, int n,
                            int slice_chunks) {
  constexpr int S = Split<P>::kStates;
  static_assert(S % kGroup == 0, "whole passes of 4 states");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  auto& sm = *reinterpret_cast<BackwardTiles<P>*>(smem_raw);
  const int b = blockIdx.y, e0 = blockIdx.x * kK, slice = blockIdx.z;
  const int c = threadIdx.x / P, q = threadIdx.x % P, e = e0 + c, j0 = q * S;
  const bool valid = e < channels;
  // This sequence's rows; the pointers are offset where used (kernel parameters stay in the
  // constant bank instead of taking registers through the loop).
  const size_t seq = static_cast<size_t>(b) * channels * n, bc_off = static_cast<size_t>(b) * kScanStates * n;
  const int n_chunks = (n + kL - 1) / kL, n_saved = (n + kSave - 1) / kSave;
  const float* my_states =
      valid ? states + (static_cast<size_t>(b) * channels + e) * n_saved * kScanStates + j0 : nullptr;

  const int first = slice * slice_chunks, last = min(n_chunks, first + slice_chunks);  // this block's chunks
  const float* my_dh_in = dh_in && valid ? dh_in + slice_row(b, e, slice, channels) * kScanStates + j0 : nullptr;
  float a2[S], dh[S], da[S];  // dh: the adjoint λ entering the step about to be walked (from later steps)
#pragma unroll
  for (int k = 0; k < S; ++k) {
    a2[k] = valid ? A[e * kScanStates + j0 + k] * kLog2e : 0.f;
    dh[k] = my_dh_in ? my_dh_in[k] : 0.f;
    da[k] = 0.f;
  }
  for (int i = threadIdx.x; i < kK; i += Split<P>::kThreads) sm.d_skip[i] = 0.f, sm.d_bias[i] = 0.f;

  for (int chunk = last - 1; chunk >= first; --chunk) {
    const int t0 = chunk * kL;
    __syncthreads();  // the previous chunk's tiles are read (and d_skip, d_bias zeroed)
    stage_backward<Split<P>::kThreads>(sm, u + seq, delta + seq, z + seq, dout + seq, delta_bias, e0, channels, t0, n);
    stage_bc<Split<P>::kThreads>(sm.bc, Bm + bc_off, Cm + bc_off, t0, n);
    __syncthreads();
#pragma unroll 1
    for (int sub = kL / kSave - 1; sub >= 0; --sub)
      backward_block<P>(sm, my_states, (t0 + sub * kSave) / kSave, a2, dh, da, c, q, sub * kSave,
                        std::make_integer_sequence<int, S / kGroup>{});
    __syncthreads();
    unstage_backward(sm, D, du + seq, ddelta + seq, dz + seq, dB + bc_off, dC + bc_off, e0, channels, t0, n);
  }
  __syncthreads();
  if (valid) {
#pragma unroll
    for (int k = 0; k < S; ++k) atomicAdd(dA + e * kScanStates + j0 + k, da[k]);
  }
  for (int i = threadIdx.x; i < kK; i += Split<P>::kThreads)
    if (e0 + i < channels) {
      atomicAdd(dD + e0 + i, sm.d_skip[i]);
      if (ddelta_bias) atomicAdd(ddelta_bias + e0 + i, sm.d_bias[i]);
    }
}

}  // namespace
}  // namespace mixlab::cuda::detail
