#pragma once
// The forward kernel of the v2 selective scan (equations and layout: selective_scan_v2.cu).

#include "mixers/cuda/selective_scan_v2_common.cuh"

namespace mixlab::cuda::detail {
namespace {

// Shared memory of the forward: float [K x kTP] tiles of Δ, u, SiLU(z) and out, and B|C.
struct ForwardTiles {
  float dt[kK * kTP], x[kK * kTP], gate[kK * kTP], out[kK * kTP];
  alignas(16) float bc[kL * kBC];
};

// Stage steps [t0, t0 + kL) of channels [e0, e0 + K):  dt = softplus(δ + b_δ), x = u,
// gate = z σ(z); zeros outside the channels and past N (Δ = 0 makes a padded step a no-op).
template <int THREADS, class T>
__device__ __forceinline__ void stage_forward(ForwardTiles& sm, const T* u, const T* delta, const T* z,
                                              const float* bias, int e0, int channels, int t0, int n) {
#pragma unroll 4
  for (int i = threadIdx.x; i < kK * kL; i += THREADS) {
    const int r = i / kL, t = i % kL, e = e0 + r, tt = t0 + t;
    const bool ok = e < channels && tt < n;
    const size_t at = static_cast<size_t>(e) * n + tt;
    const float zz = ok ? to_f(z[at]) : 0.f;
    sm.dt[r * kTP + t] = ok ? softplus(to_f(delta[at]) + (bias ? bias[e] : 0.f)) : 0.f;
    sm.x[r * kTP + t] = ok ? to_f(u[at]) : 0.f;
    sm.gate[r * kTP + t] = zz * sigmoid(zz);
  }
}

// u, delta, z, out: this sequence's [E, N];  Bm, Cm: its [16, N];  states: [B, E, ceil(N/16), 16].
// Per step, thread (channel c, part q) with states j = q·S + k:
//   h[k] <- exp2(Δ A[j] log2 e) h[k] + Δ u B_t[j];   out = (Σ_lanes Σ_k h[k] C_t[j] + D u) · gate
template <class T, int P>
__global__ void __launch_bounds__(Split<P>::kThreads, kForwardMinBlocks)
    scan_v2_forward_kernel(const T* __restrict__ u, const T* __restrict__ delta, const float* __restrict__ A,
                           const T* __restrict__ Bm, const T* __restrict__ Cm, const float* __restrict__ D,
                           const T* __restrict__ z, const float* __restrict__ delta_bias, T* __restrict__ out,
                           float* __restrict__ states, const float* __restrict__ h_in, int channels, int n,
                           int slice_chunks) {
  constexpr int S = Split<P>::kStates;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  auto& sm = *reinterpret_cast<ForwardTiles*>(smem_raw);
  const int b = blockIdx.y, e0 = blockIdx.x * kK, slice = blockIdx.z;
  const int c = threadIdx.x / P, q = threadIdx.x % P, e = e0 + c, j0 = q * S;
  const bool valid = e < channels;
  const size_t seq = static_cast<size_t>(b) * channels * n;
  u += seq; delta += seq; z += seq; out += seq;
  Bm += static_cast<size_t>(b) * kScanStates * n;
  Cm += static_cast<size_t>(b) * kScanStates * n;
  const int n_chunks = (n + kL - 1) / kL, n_saved = (n + kSave - 1) / kSave;
  float* my_states =
      states && valid ? states + (static_cast<size_t>(b) * channels + e) * n_saved * kScanStates + j0 : nullptr;

  const int first = slice * slice_chunks, last = min(n_chunks, first + slice_chunks);  // this block's chunks
  const float* my_h_in = h_in && valid ? h_in + slice_row(b, e, slice, channels) * kScanStates + j0 : nullptr;
  float a2[S], h[S];
#pragma unroll
  for (int k = 0; k < S; ++k) {
    a2[k] = valid ? A[e * kScanStates + j0 + k] * kLog2e : 0.f;
    h[k] = my_h_in ? my_h_in[k] : 0.f;
  }
  const float d_skip = valid ? D[e] : 0.f;

  for (int chunk = first; chunk < last; ++chunk) {
    const int t0 = chunk * kL;
    __syncthreads();  // the previous chunk's tiles are read
    stage_forward<Split<P>::kThreads>(sm, u, delta, z, delta_bias, e0, channels, t0, n);
    stage_bc<Split<P>::kThreads>(sm.bc, Bm, Cm, t0, n);
    __syncthreads();
#pragma unroll 1
    for (int sub = 0; sub < kL / kSave; ++sub) {
#pragma unroll 4
      for (int i = 0; i < kSave; ++i) {
        const int t = sub * kSave + i;
        const float dt = sm.dt[c * kTP + t], x = sm.x[c * kTP + t], dtx = dt * x;
        float bv[S], cv[S];
        load_states(sm.bc + t * kBC, j0, bv);
        load_states(sm.bc + t * kBC + kScanStates, j0, cv);
        float y = 0.f;
#pragma unroll
        for (int k = 0; k < S; ++k) {
          h[k] = exp2f(dt * a2[k]) * h[k] + dtx * bv[k];
          y += h[k] * cv[k];
        }
        y = lane_group_sum<P>(y);
        if (q == 0) sm.out[c * kTP + t] = (y + d_skip * x) * sm.gate[c * kTP + t];
      }
      const int saved = (t0 + sub * kSave) / kSave;  // the state after step t0 + sub·16 + 15
      if (my_states && saved < n_saved) {
        float4* dst = reinterpret_cast<float4*>(my_states + static_cast<size_t>(saved) * kScanStates);
#pragma unroll
        for (int k = 0; k < S; k += 4) dst[k / 4] = make_float4(h[k], h[k + 1], h[k + 2], h[k + 3]);
      }
    }
    __syncthreads();
#pragma unroll 4
    for (int i = threadIdx.x; i < kK * kL; i += Split<P>::kThreads) {
      const int r = i / kL, t = i % kL, tt = t0 + t;
      if (e0 + r < channels && tt < n) store_f(out + static_cast<size_t>(e0 + r) * n + tt, sm.out[r * kTP + t]);
    }
  }
}

}  // namespace
}  // namespace mixlab::cuda::detail
