// Mamba-1 selective scan, fused with the D skip and the SiLU(z) gate, forward and backward.
//
//   Δ_t = softplus(δ_t + b_δ)                      (per channel e)
//   h_t[j] = exp(Δ_t A[j]) h_{t-1}[j] + Δ_t u_t B_t[j]        j = 0..n-1 (n = 16)
//   y_t = Σ_j h_t[j] C_t[j] + D u_t,   out_t = y_t · SiLU(z_t)
//
// Layout of the work: a block owns 32 channels of one sequence; 4 consecutive threads share one
// channel and hold 4 of its 16 states each in registers (y needs a 2-shuffle sum over the quad).
// Time is walked in chunks of 64 steps: [32 x 64] tiles of u, δ, z (and dout) and [16 x 64] tiles
// of B, C are copied to shared memory with cp.async, double-buffered so that the next chunk's
// copy overlaps this chunk's arithmetic; every input element is read once.  The forward writes
// the state after every 16 steps (n floats per channel) for the backward.
//
// Backward, per 16-step sub-chunk from the last to the first: recompute its 16 states from the
// saved state (in registers), then walk time in reverse with the adjoint dh:
//   dy = dout·SiLU(z);  dz = dout·y·σ(z)(1 + z(1-σ(z)));  dh_t += dy C_t
//   dC_t += dy h_t;  dB_t += dh_t Δ u;  du += Σ_j dh Δ B + dy D;  dD += dy u
//   dΔ += Σ_j dh (h_{t-1} e^{ΔA} A + u B);  dA += Σ_t dh h_{t-1} e^{ΔA} Δ
//   dδ = dΔ σ(δ + b_δ) = dΔ (1 - e^{-Δ});  db_δ += dδ;  dh_{t-1} = dh_t e^{ΔA}
// dB, dC are sums over channels: a warp sums its 8 channels with shuffles, the block in shared
// memory, the grid with float atomics.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "core/cuda/elements.cuh"
#include "mixers/cuda/launch.h"

namespace mixlab::cuda::detail {
namespace {

constexpr int kChannels = 32;          // channels per block
constexpr int kThreads = 4 * kChannels;
constexpr int kPer = kScanStates / 4;  // states per thread
constexpr int kL = kScanChunk;         // time steps per chunk
constexpr int kSub = kScanStateStride; // steps per backward sub-chunk
constexpr int kPad = kL + 1;           // padded row of a float [channels x time] tile
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// Reduce-scatter over the 4 lanes of a quad: v[k] holds this lane's part of value k; afterwards
// lane q (= lane % 4) returns the quad's sum of value q.  3 shuffles instead of 4 x 2.
__device__ __forceinline__ float quad_reduce_scatter(const float (&v)[4], int q) {
  const bool hi = (q >> 1) & 1, lo = q & 1;
  float w[2];
#pragma unroll
  for (int k = 0; k < 2; ++k) {
    const float send = hi ? v[k] : v[k + 2], keep = hi ? v[k + 2] : v[k];
    w[k] = keep + __shfl_xor_sync(0xffffffffu, send, 2);
  }
  const float send = lo ? w[0] : w[1], keep = lo ? w[1] : w[0];
  return keep + __shfl_xor_sync(0xffffffffu, send, 1);
}
// The same for M values per step: v[k][m] -> lane q returns the sums of v[q][0..M).
template <int M>
__device__ __forceinline__ void quad_reduce_scatter(const float (&v)[4][M], int q, float (&out)[M]) {
  const bool hi = (q >> 1) & 1, lo = q & 1;
  float w[2][M];
#pragma unroll
  for (int k = 0; k < 2; ++k)
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float send = hi ? v[k][m] : v[k + 2][m], keep = hi ? v[k + 2][m] : v[k][m];
      w[k][m] = keep + __shfl_xor_sync(0xffffffffu, send, 2);
    }
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const float send = lo ? w[0][m] : w[1][m], keep = lo ? w[1][m] : w[0][m];
    out[m] = keep + __shfl_xor_sync(0xffffffffu, send, 1);
  }
}
// Reduce-scatter of 8 values over the 8 channels of a warp (lanes differing in bits 2..4): the
// lane returns the sum of value 4·b4 + 2·b3 + b2 (b = its lane bits).  7 shuffles instead of 24.
__device__ __forceinline__ float channel_reduce_scatter(const float (&v)[8], int lane) {
  const bool b4 = (lane >> 4) & 1, b3 = (lane >> 3) & 1, b2 = (lane >> 2) & 1;
  float w[4], x[2];
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const float send = b4 ? v[k] : v[k + 4], keep = b4 ? v[k + 4] : v[k];
    w[k] = keep + __shfl_xor_sync(0xffffffffu, send, 16);
  }
#pragma unroll
  for (int k = 0; k < 2; ++k) {
    const float send = b3 ? w[k] : w[k + 2], keep = b3 ? w[k + 2] : w[k];
    x[k] = keep + __shfl_xor_sync(0xffffffffu, send, 8);
  }
  const float send = b2 ? x[0] : x[1], keep = b2 ? x[1] : x[0];
  return keep + __shfl_xor_sync(0xffffffffu, send, 4);
}

// A raw tile row: kL elements of T plus one 4-byte word of padding (rows land in different banks).
template <class T>
__host__ __device__ constexpr int row_len() { return kL + 4 / static_cast<int>(sizeof(T)); }

// Copy rows [0, rows) x steps [t0, t0 + kL) of a row-major [rows_total, n] matrix (rows starting
// at r0) into a raw tile; zeros outside.  `aligned`: every row start is 4-byte aligned, so the copy
// goes through cp.async in 4-byte words; otherwise element by element.
template <class T>
__device__ __forceinline__ void stage_raw(T* tile, const T* m, int r0, int rows, int rows_total, int t0, int n,
                                          bool aligned) {
  constexpr int E = 4 / sizeof(T);  // elements per word
  constexpr int W = kL / E;         // words per row
  if (aligned) {
    for (int i = threadIdx.x; i < rows * W; i += kThreads) {
      const int r = i / W, w = i % W, tt = t0 + w * E, row = r0 + r;
      const int valid = (row < rows_total && tt < n) ? min(E, n - tt) : 0;
      const T* src = m + (valid ? static_cast<size_t>(row) * n + tt : 0);
      const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(tile + r * row_len<T>() + w * E));
      asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src),
                   "r"(valid * static_cast<int>(sizeof(T))));
    }
  } else {
    for (int i = threadIdx.x; i < rows * kL; i += kThreads) {
      const int r = i / kL, t = i % kL, tt = t0 + t, row = r0 + r;
      tile[r * row_len<T>() + t] = (row < rows_total && tt < n) ? m[static_cast<size_t>(row) * n + tt] : T(0.f);
    }
  }
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::); }

// The raw inputs of one chunk.
template <class T, bool BACKWARD>
struct RawChunk {  // every array 16-byte aligned (cp.async needs aligned destinations)
  alignas(16) T u[kChannels * row_len<T>()];
  alignas(16) T delta[kChannels * row_len<T>()];
  alignas(16) T z[kChannels * row_len<T>()];
  alignas(16) T dout[BACKWARD ? kChannels * row_len<T>() : 8];
  alignas(16) T B[kScanStates * row_len<T>()];
  alignas(16) T C[kScanStates * row_len<T>()];
};

template <class T, bool BACKWARD>
__device__ __forceinline__ void stage_chunk(RawChunk<T, BACKWARD>& raw, const T* u, const T* delta, const T* z,
                                            const T* dout, const T* Bm, const T* Cm, int e0, int channels, int t0,
                                            int n, bool aligned) {
  stage_raw(raw.u, u, e0, kChannels, channels, t0, n, aligned);
  stage_raw(raw.delta, delta, e0, kChannels, channels, t0, n, aligned);
  stage_raw(raw.z, z, e0, kChannels, channels, t0, n, aligned);
  if constexpr (BACKWARD) stage_raw(raw.dout, dout, e0, kChannels, channels, t0, n, aligned);
  stage_raw(raw.B, Bm, 0, kScanStates, kScanStates, t0, n, aligned);
  stage_raw(raw.C, Cm, 0, kScanStates, kScanStates, t0, n, aligned);
  cp_async_commit();
}

// Δ = softplus(δ + b) for valid steps and channels, 0 elsewhere (which makes padded steps no-ops).
template <class T>
__device__ __forceinline__ void softplus_tile(float* dts, const T* delta, const float* bias, int e0, int channels,
                                              int t0, int n) {
  for (int i = threadIdx.x; i < kChannels * kL; i += kThreads) {
    const int r = i / kL, t = i % kL, e = e0 + r;
    dts[r * kPad + t] = (e < channels && t0 + t < n)
                            ? softplus(to_f(delta[r * row_len<T>() + t]) + (bias ? bias[e] : 0.f))
                            : 0.f;
  }
}
template <class T>
__device__ __forceinline__ void unstage(const float* tile, T* m, int e0, int channels, int t0, int n) {
  for (int i = threadIdx.x; i < kChannels * kL; i += kThreads) {
    const int r = i / kL, t = i % kL;
    const int e = e0 + r, tt = t0 + t;
    if (e < channels && tt < n) store_f(m + static_cast<size_t>(e) * n + tt, tile[r * kPad + t]);
  }
}

template <class T>
struct ForwardSmem {
  RawChunk<T, false> raw[2];
  float dts[kChannels * kPad];
  float out[kChannels * kPad];
};

template <class T>
__global__ void __launch_bounds__(kThreads)
    scan_forward_kernel(const T* __restrict__ u, const T* __restrict__ delta, const float* __restrict__ A,
                        const T* __restrict__ Bm, const T* __restrict__ Cm, const float* __restrict__ D,
                        const T* __restrict__ z, const float* __restrict__ delta_bias, T* __restrict__ out,
                        float* __restrict__ states, int channels, int n, bool aligned) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  auto& sm = *reinterpret_cast<ForwardSmem<T>*>(smem_raw);
  constexpr int RL = row_len<T>();
  const int b = blockIdx.y, e0 = blockIdx.x * kChannels;
  const int ch = threadIdx.x / 4, quarter = threadIdx.x % 4, e = e0 + ch;
  const bool valid = e < channels;
  const size_t seq = static_cast<size_t>(b) * channels * n;
  u += seq; delta += seq; z += seq; out += seq;
  Bm += static_cast<size_t>(b) * kScanStates * n;
  Cm += static_cast<size_t>(b) * kScanStates * n;
  const int n_chunks = (n + kL - 1) / kL, n_saved = (n + kSub - 1) / kSub;
  float* my_states = states ? states + (static_cast<size_t>(b) * channels + e) * n_saved * kScanStates + quarter * kPer : nullptr;

  float a2[kPer], h[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    a2[j] = valid ? A[e * kScanStates + quarter * kPer + j] * kLog2e : 0.f;
    h[j] = 0.f;
  }
  const float d_skip = valid ? D[e] : 0.f;

  stage_chunk<T, false>(sm.raw[0], u, delta, z, nullptr, Bm, Cm, e0, channels, 0, n, aligned);
  for (int chunk = 0; chunk < n_chunks; ++chunk) {
    const int t0 = chunk * kL;
    const auto& raw = sm.raw[chunk & 1];
    cp_async_wait_all();
    __syncthreads();
    softplus_tile(sm.dts, raw.delta, delta_bias, e0, channels, t0, n);
    __syncthreads();
    if (chunk + 1 < n_chunks)
      stage_chunk<T, false>(sm.raw[(chunk + 1) & 1], u, delta, z, nullptr, Bm, Cm, e0, channels, t0 + kL, n, aligned);
#pragma unroll 1
    for (int sub = 0; sub < kL / kSub; ++sub) {
#pragma unroll
      for (int g4 = 0; g4 < kSub / 4; ++g4) {
        float yp[4];  // this lane's 4 states' share of y, for 4 steps
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          const int t = sub * kSub + g4 * 4 + k;
          const float dt = sm.dts[ch * kPad + t], dtx = dt * to_f(raw.u[ch * RL + t]);
          yp[k] = 0.f;
#pragma unroll
          for (int j = 0; j < kPer; ++j) {
            const int js = quarter * kPer + j;
            h[j] = exp2f(dt * a2[j]) * h[j] + dtx * to_f(raw.B[js * RL + t]);
            yp[k] += h[j] * to_f(raw.C[js * RL + t]);
          }
        }
        const float y = quad_reduce_scatter(yp, quarter);  // y of step g4·4 + quarter
        const int t = sub * kSub + g4 * 4 + quarter;
        const float x = to_f(raw.u[ch * RL + t]), zz = to_f(raw.z[ch * RL + t]);
        sm.out[ch * kPad + t] = (y + d_skip * x) * zz * sigmoid(zz);
      }
      const int saved = chunk * (kL / kSub) + sub;
      if (my_states && valid && saved < n_saved)
        *reinterpret_cast<float4*>(my_states + static_cast<size_t>(saved) * kScanStates) = make_float4(h[0], h[1], h[2], h[3]);
    }
    __syncthreads();
    unstage(sm.out, out, e0, channels, t0, n);
  }
}

template <class T>
struct BackwardSmem {
  RawChunk<T, true> raw[2];
  float dts[kChannels * kPad];  // Δ
  float gu[kChannels * kPad];   // du
  float gd[kChannels * kPad];   // dδ
  float gz[kChannels * kPad];   // dz
  float red[(kThreads / 32) * 2 * kScanStates * kPad];  // per warp: Σ over its 8 channels of dB, dC
};

template <class T>
__global__ void __launch_bounds__(kThreads)
    scan_backward_kernel(const T* __restrict__ u, const T* __restrict__ delta, const float* __restrict__ A,
                         const T* __restrict__ Bm, const T* __restrict__ Cm, const float* __restrict__ D,
                         const T* __restrict__ z, const float* __restrict__ delta_bias,
                         const float* __restrict__ states, const T* __restrict__ dout, T* __restrict__ du,
                         T* __restrict__ ddelta, float* __restrict__ dA, float* __restrict__ dB,
                         float* __restrict__ dC, float* __restrict__ dD, T* __restrict__ dz,
                         float* __restrict__ ddelta_bias, int channels, int n, bool aligned) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  auto& sm = *reinterpret_cast<BackwardSmem<T>*>(smem_raw);
  constexpr int RL = row_len<T>();
  const int b = blockIdx.y, e0 = blockIdx.x * kChannels;
  const int ch = threadIdx.x / 4, quarter = threadIdx.x % 4, e = e0 + ch;
  const int lane = threadIdx.x & 31, warp = threadIdx.x / 32;
  const bool valid = e < channels;
  const size_t seq = static_cast<size_t>(b) * channels * n;
  u += seq; delta += seq; z += seq; dout += seq; du += seq; ddelta += seq; dz += seq;
  const size_t bc_off = static_cast<size_t>(b) * kScanStates * n;
  Bm += bc_off; Cm += bc_off; dB += bc_off; dC += bc_off;
  const int n_chunks = (n + kL - 1) / kL, n_saved = (n + kSub - 1) / kSub;
  const float* my_states = states + (static_cast<size_t>(b) * channels + (valid ? e : 0)) * n_saved * kScanStates + quarter * kPer;

  float a[kPer], a2[kPer], dh[kPer], da_acc[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    a[j] = valid ? A[e * kScanStates + quarter * kPer + j] : 0.f;
    a2[j] = a[j] * kLog2e;
    dh[j] = 0.f;
    da_acc[j] = 0.f;
  }
  const float d_skip = valid ? D[e] : 0.f;
  float dd_acc = 0.f, dbias_acc = 0.f;

  stage_chunk<T, true>(sm.raw[(n_chunks - 1) & 1], u, delta, z, dout, Bm, Cm, e0, channels, (n_chunks - 1) * kL, n, aligned);
  for (int chunk = n_chunks - 1; chunk >= 0; --chunk) {
    const int t0 = chunk * kL;
    const auto& raw = sm.raw[chunk & 1];
    cp_async_wait_all();
    __syncthreads();
    softplus_tile(sm.dts, raw.delta, delta_bias, e0, channels, t0, n);
    __syncthreads();
    if (chunk > 0)
      stage_chunk<T, true>(sm.raw[(chunk - 1) & 1], u, delta, z, dout, Bm, Cm, e0, channels, t0 - kL, n, aligned);

#pragma unroll 1
    for (int sub = kL / kSub - 1; sub >= 0; --sub) {
      const int saved = chunk * (kL / kSub) + sub;  // this sub-chunk starts from state saved - 1
      float h0[kPer], hist[kSub][kPer];
      if (saved > 0 && valid) {
        const float4 s4 = *reinterpret_cast<const float4*>(my_states + static_cast<size_t>(saved - 1) * kScanStates);
        h0[0] = s4.x; h0[1] = s4.y; h0[2] = s4.z; h0[3] = s4.w;
      } else {
#pragma unroll
        for (int j = 0; j < kPer; ++j) h0[j] = 0.f;
      }
#pragma unroll
      for (int i = 0; i < kSub; ++i) {
        const int t = sub * kSub + i;
        const float dt = sm.dts[ch * kPad + t], x = to_f(raw.u[ch * RL + t]);
#pragma unroll
        for (int j = 0; j < kPer; ++j) {
          const float prev = i == 0 ? h0[j] : hist[i - 1][j];
          hist[i][j] = exp2f(dt * a2[j]) * prev + dt * x * to_f(raw.B[(quarter * kPer + j) * RL + t]);
        }
      }
#pragma unroll
      for (int g4 = kSub / 4 - 1; g4 >= 0; --g4) {
        float part[4][3];  // this lane's share of dΔ, du, y for 4 steps
#pragma unroll
        for (int k = 3; k >= 0; --k) {
          const int i = g4 * 4 + k, t = sub * kSub + i;
          const float dt = sm.dts[ch * kPad + t], x = to_f(raw.u[ch * RL + t]);
          const float zz = to_f(raw.z[ch * RL + t]), go = to_f(raw.dout[ch * RL + t]);
          const float dy = go * zz * sigmoid(zz);
          float ddt = 0.f, dx = 0.f, y = 0.f, red[8];  // red: dB (4 states), dC (4 states)
#pragma unroll
          for (int j = 0; j < kPer; ++j) {
            const int js = quarter * kPer + j;
            const float bj = to_f(raw.B[js * RL + t]), cj = to_f(raw.C[js * RL + t]);
            y += hist[i][j] * cj;
            dh[j] += dy * cj;
            const float decay = exp2f(dt * a2[j]);
            const float prev = i == 0 ? h0[j] : hist[i - 1][j];
            const float g_decay = dh[j] * prev * decay;  // ∂L/∂(ΔA) through the decay
            ddt += g_decay * a[j] + dh[j] * x * bj;
            dx += dh[j] * dt * bj;
            red[j] = dh[j] * dt * x;
            red[4 + j] = dy * hist[i][j];
            da_acc[j] += g_decay * dt;
            dh[j] *= decay;
          }
          part[k][0] = ddt;
          part[k][1] = dx;
          part[k][2] = y;
          // Sum dB, dC over the warp's 8 channels; each lane keeps one (state, dB|dC) of step t.
          const float r = channel_reduce_scatter(red, lane);
          const int idx = ((lane >> 4) & 1) * 4 + ((lane >> 3) & 1) * 2 + ((lane >> 2) & 1);
          sm.red[((warp * 2 + (idx >> 2)) * kScanStates + quarter * kPer + (idx & 3)) * kPad + t] = r;
        }
        float full[3];
        quad_reduce_scatter<3>(part, quarter, full);  // sums of step g4·4 + quarter
        const int t = sub * kSub + g4 * 4 + quarter;
        const float dt = sm.dts[ch * kPad + t], x = to_f(raw.u[ch * RL + t]);
        const float zz = to_f(raw.z[ch * RL + t]), go = to_f(raw.dout[ch * RL + t]);
        const float sz = sigmoid(zz), dy = go * zz * sz, y = full[2] + d_skip * x;
        const float g_delta = full[0] * (1.f - __expf(-dt));  // dδ = dΔ σ(δ + b)
        sm.gu[ch * kPad + t] = full[1] + dy * d_skip;
        sm.gd[ch * kPad + t] = g_delta;
        sm.gz[ch * kPad + t] = go * y * sz * (1.f + zz * (1.f - sz));
        dd_acc += dy * x;
        dbias_acc += g_delta;
      }
    }
    __syncthreads();
    unstage(sm.gu, du, e0, channels, t0, n);
    unstage(sm.gd, ddelta, e0, channels, t0, n);
    unstage(sm.gz, dz, e0, channels, t0, n);
    for (int i = threadIdx.x; i < 2 * kScanStates * kL; i += kThreads) {
      const int which = i / (kScanStates * kL), j = (i / kL) % kScanStates, t = i % kL, tt = t0 + t;
      if (tt < n) {
        float sum = 0.f;
#pragma unroll
        for (int w = 0; w < kThreads / 32; ++w) sum += sm.red[((w * 2 + which) * kScanStates + j) * kPad + t];
        atomicAdd((which ? dC : dB) + static_cast<size_t>(j) * n + tt, sum);
      }
    }
  }
  dd_acc = quad_sum(dd_acc);
  dbias_acc = quad_sum(dbias_acc);
  if (valid) {
#pragma unroll
    for (int j = 0; j < kPer; ++j) atomicAdd(dA + e * kScanStates + quarter * kPer + j, da_acc[j]);
    if (quarter == 0) {
      atomicAdd(dD + e, dd_acc);
      if (ddelta_bias) atomicAdd(ddelta_bias + e, dbias_acc);
    }
  }
}

void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("mixers/cuda/selective_scan.cu: ") + what + ": " + cudaGetErrorString(err));
}

void check_launch(const char* what) { check_cuda(cudaGetLastError(), what); }

void check_shape(const ScanShape& sh) {
  if (sh.states != kScanStates)
    throw std::invalid_argument("mixers/cuda/selective_scan: d_state " + std::to_string(sh.states) +
                                " (the CUDA kernel supports " + std::to_string(kScanStates) + ")");
}

// Every row of a [rows, n] matrix starts 4-byte aligned (the base pointers come from the caching
// allocator, 256-byte aligned).
template <class T>
bool rows_aligned(int n) { return (static_cast<size_t>(n) * sizeof(T)) % 4 == 0; }

template <class T>
void forward_typed(const ScanShape& sh, const void* u, const void* delta, const float* A, const void* B,
                   const void* C, const float* D, const void* z, const float* bias, void* out, float* states,
                   cudaStream_t stream) {
  const dim3 grid((sh.channels + kChannels - 1) / kChannels, sh.batch);
  const size_t smem = sizeof(ForwardSmem<T>);
  auto kernel = scan_forward_kernel<T>;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
             "raising the dynamic shared-memory limit");
  kernel<<<grid, kThreads, smem, stream>>>(
      static_cast<const T*>(u), static_cast<const T*>(delta), A, static_cast<const T*>(B), static_cast<const T*>(C),
      D, static_cast<const T*>(z), bias, static_cast<T*>(out), states, sh.channels, sh.n, rows_aligned<T>(sh.n));
  check_launch("forward");
}

template <class T>
void backward_typed(const ScanShape& sh, const void* u, const void* delta, const float* A, const void* B,
                    const void* C, const float* D, const void* z, const float* bias, const float* states,
                    const void* dout, void* du, void* ddelta, float* dA, float* dB, float* dC, float* dD, void* dz,
                    float* dbias, cudaStream_t stream) {
  const dim3 grid((sh.channels + kChannels - 1) / kChannels, sh.batch);
  const size_t smem = sizeof(BackwardSmem<T>);
  auto kernel = scan_backward_kernel<T>;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
             "raising the dynamic shared-memory limit");
  kernel<<<grid, kThreads, smem, stream>>>(
      static_cast<const T*>(u), static_cast<const T*>(delta), A, static_cast<const T*>(B), static_cast<const T*>(C),
      D, static_cast<const T*>(z), bias, states, static_cast<const T*>(dout), static_cast<T*>(du),
      static_cast<T*>(ddelta), dA, dB, dC, dD, static_cast<T*>(dz), dbias, sh.channels, sh.n, rows_aligned<T>(sh.n));
  check_launch("backward");
}

}  // namespace

void selective_scan_forward(const ScanShape& sh, const void* u, const void* delta, const float* A, const void* B,
                            const void* C, const float* D, const void* z, const float* bias, void* out,
                            float* states, void* stream_ptr) {
  check_shape(sh);
  if (sh.batch == 0 || sh.channels == 0 || sh.n == 0) return;
  auto stream = static_cast<cudaStream_t>(stream_ptr);
  switch (sh.element) {
    case ScanElement::f32: forward_typed<float>(sh, u, delta, A, B, C, D, z, bias, out, states, stream); break;
    case ScanElement::bf16: forward_typed<__nv_bfloat16>(sh, u, delta, A, B, C, D, z, bias, out, states, stream); break;
    case ScanElement::fp16: forward_typed<__half>(sh, u, delta, A, B, C, D, z, bias, out, states, stream); break;
  }
}

void selective_scan_backward(const ScanShape& sh, const void* u, const void* delta, const float* A, const void* B,
                             const void* C, const float* D, const void* z, const float* bias, const float* states,
                             const void* dout, void* du, void* ddelta, float* dA, float* dB, float* dC, float* dD,
                             void* dz, float* dbias, void* stream_ptr) {
  check_shape(sh);
  if (sh.batch == 0 || sh.channels == 0 || sh.n == 0) return;
  auto stream = static_cast<cudaStream_t>(stream_ptr);
#define MIXLAB_SCAN_BACKWARD(T) \
  backward_typed<T>(sh, u, delta, A, B, C, D, z, bias, states, dout, du, ddelta, dA, dB, dC, dD, dz, dbias, stream)
  switch (sh.element) {
    case ScanElement::f32: MIXLAB_SCAN_BACKWARD(float); break;
    case ScanElement::bf16: MIXLAB_SCAN_BACKWARD(__nv_bfloat16); break;
    case ScanElement::fp16: MIXLAB_SCAN_BACKWARD(__half); break;
  }
#undef MIXLAB_SCAN_BACKWARD
}

}  // namespace mixlab::cuda::detail
