// Mamba-1 selective scan, fused with the D skip and the SiLU(z) gate, forward and backward.
//
//   Δ_t = softplus(δ_t + b_δ)                      (per channel e)
//   h_t[j] = exp(Δ_t A[j]) h_{t-1}[j] + Δ_t u_t B_t[j]        j = 0..n-1 (n = 16)
//   y_t = Σ_j h_t[j] C_t[j] + D u_t,   out_t = y_t · SiLU(z_t)
//
// Layout of the work: a block owns 32 channels of one sequence; 4 consecutive threads share one
// channel and hold 4 of its 16 states each in registers (y needs a 2-shuffle sum over the quad).
// Time is walked in chunks of 64 steps staged in shared memory (coalesced [32 x 64] tiles of u,
// Δ, z and [16 x 64] tiles of B, C), so every input element is read once.  The forward writes the
// state after each chunk (n floats per channel per 64 steps) for the backward.
//
// Backward, per chunk from the last to the first: recompute the states from the saved chunk-start
// state (sub-chunk starts every 16 steps kept in registers, then the 16 states of one sub-chunk),
// then walk time in reverse with the adjoint dh:
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

#include "mixers/cuda/launch.h"

namespace mixlab::cuda::detail {
namespace {

constexpr int kChannels = 32;          // channels per block
constexpr int kThreads = 4 * kChannels;
constexpr int kPer = kScanStates / 4;  // states per thread
constexpr int kL = kScanChunk;         // time steps per chunk
constexpr int kSub = 16;               // steps per backward sub-chunk
constexpr int kPad = kL + 1;           // padded row of a [channels x time] tile
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ float load_f(const float* p) { return *p; }
__device__ __forceinline__ float load_f(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ float load_f(const __half* p) { return __half2float(*p); }
__device__ __forceinline__ void store_f(float* p, float x) { *p = x; }
__device__ __forceinline__ void store_f(__nv_bfloat16* p, float x) { *p = __float2bfloat16_rn(x); }
__device__ __forceinline__ void store_f(__half* p, float x) { *p = __float2half_rn(x); }

__device__ __forceinline__ float softplus(float x) { return x > 20.f ? x : log1pf(__expf(x)); }
__device__ __forceinline__ float sigmoid(float x) { return 1.f / (1.f + __expf(-x)); }

// Stage rows [e0, e0+32) x steps [t0, t0+64) of a [E, N] matrix (one sequence) into a padded tile.
template <class T>
__device__ __forceinline__ void stage(float* tile, const T* m, int e0, int channels, int t0, int n) {
  for (int i = threadIdx.x; i < kChannels * kL; i += kThreads) {
    const int r = i / kL, t = i % kL;
    const int e = e0 + r, tt = t0 + t;
    tile[r * kPad + t] = (e < channels && tt < n) ? load_f(m + static_cast<size_t>(e) * n + tt) : 0.f;
  }
}
// Stage states [0, 16) x steps [t0, t0+64) of a [n_states, N] matrix into an unpadded tile.
template <class T>
__device__ __forceinline__ void stage_bc(float* tile, const T* m, int t0, int n) {
  for (int i = threadIdx.x; i < kScanStates * kL; i += kThreads) {
    const int j = i / kL, t = i % kL, tt = t0 + t;
    tile[j * kL + t] = tt < n ? load_f(m + static_cast<size_t>(j) * n + tt) : 0.f;
  }
}
// Δ = softplus(δ + b) for valid steps, 0 past the end (which makes padded steps no-ops).
template <class T>
__device__ __forceinline__ void stage_delta(float* tile, const T* m, const float* bias, int e0, int channels,
                                            int t0, int n) {
  for (int i = threadIdx.x; i < kChannels * kL; i += kThreads) {
    const int r = i / kL, t = i % kL;
    const int e = e0 + r, tt = t0 + t;
    tile[r * kPad + t] = (e < channels && tt < n)
                             ? softplus(load_f(m + static_cast<size_t>(e) * n + tt) + (bias ? bias[e] : 0.f))
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

__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    scan_forward_kernel(const T* __restrict__ u, const T* __restrict__ delta, const float* __restrict__ A,
                        const T* __restrict__ Bm, const T* __restrict__ Cm, const float* __restrict__ D,
                        const T* __restrict__ z, const float* __restrict__ delta_bias, T* __restrict__ out,
                        float* __restrict__ states, int channels, int n) {
  __shared__ float us[kChannels * kPad], dts[kChannels * kPad], zs[kChannels * kPad], ys[kChannels * kPad];
  __shared__ float bs[kScanStates * kL], cs[kScanStates * kL];
  const int b = blockIdx.y, e0 = blockIdx.x * kChannels;
  const int ch = threadIdx.x / 4, quarter = threadIdx.x % 4, e = e0 + ch;
  const bool valid = e < channels;
  const size_t seq = static_cast<size_t>(b) * channels * n;
  u += seq; delta += seq; z += seq; out += seq;
  Bm += static_cast<size_t>(b) * kScanStates * n;
  Cm += static_cast<size_t>(b) * kScanStates * n;
  const int n_chunks = (n + kL - 1) / kL;

  float a2[kPer], h[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    a2[j] = valid ? A[e * kScanStates + quarter * kPer + j] * kLog2e : 0.f;
    h[j] = 0.f;
  }
  const float d_skip = valid ? D[e] : 0.f;

  for (int chunk = 0; chunk < n_chunks; ++chunk) {
    const int t0 = chunk * kL;
    __syncthreads();
    stage(us, u, e0, channels, t0, n);
    stage_delta(dts, delta, delta_bias, e0, channels, t0, n);
    stage(zs, z, e0, channels, t0, n);
    stage_bc(bs, Bm, t0, n);
    stage_bc(cs, Cm, t0, n);
    __syncthreads();
#pragma unroll 4
    for (int t = 0; t < kL; ++t) {
      const float dt = dts[ch * kPad + t], x = us[ch * kPad + t];
      const float dtx = dt * x;
      float y = 0.f;
#pragma unroll
      for (int j = 0; j < kPer; ++j) {
        const int js = quarter * kPer + j;
        h[j] = exp2f(dt * a2[j]) * h[j] + dtx * bs[js * kL + t];
        y += h[j] * cs[js * kL + t];
      }
      y = quad_sum(y);
      if (quarter == 0) {
        const float zz = zs[ch * kPad + t];
        ys[ch * kPad + t] = (y + d_skip * x) * zz * sigmoid(zz);
      }
    }
    if (states && valid) {
      float4* dst = reinterpret_cast<float4*>(states + ((static_cast<size_t>(b) * channels + e) * n_chunks + chunk) * kScanStates + quarter * kPer);
      *dst = make_float4(h[0], h[1], h[2], h[3]);
    }
    __syncthreads();
    unstage(ys, out, e0, channels, t0, n);
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    scan_backward_kernel(const T* __restrict__ u, const T* __restrict__ delta, const float* __restrict__ A,
                         const T* __restrict__ Bm, const T* __restrict__ Cm, const float* __restrict__ D,
                         const T* __restrict__ z, const float* __restrict__ delta_bias,
                         const float* __restrict__ states, const T* __restrict__ dout, T* __restrict__ du,
                         T* __restrict__ ddelta, float* __restrict__ dA, float* __restrict__ dB,
                         float* __restrict__ dC, float* __restrict__ dD, T* __restrict__ dz,
                         float* __restrict__ ddelta_bias, int channels, int n) {
  extern __shared__ float smem[];
  float* us = smem;                     // u, then du
  float* dts = us + kChannels * kPad;   // Δ, then dδ
  float* zs = dts + kChannels * kPad;   // z, then dz
  float* dos = zs + kChannels * kPad;   // dout
  float* ys = dos + kChannels * kPad;   // y (before the gate, D skip included)
  float* bs = ys + kChannels * kPad;    // [16 x 64]
  float* cs = bs + kScanStates * kL;
  float* dbs = cs + kScanStates * kL;   // Σ over the block's channels of dB, [16 x 64]
  float* dcs = dbs + kScanStates * kL;

  const int b = blockIdx.y, e0 = blockIdx.x * kChannels;
  const int ch = threadIdx.x / 4, quarter = threadIdx.x % 4, e = e0 + ch;
  const int lane = threadIdx.x & 31;
  const bool valid = e < channels;
  const size_t seq = static_cast<size_t>(b) * channels * n;
  u += seq; delta += seq; z += seq; dout += seq; du += seq; ddelta += seq; dz += seq;
  const size_t bc_off = static_cast<size_t>(b) * kScanStates * n;
  Bm += bc_off; Cm += bc_off; dB += bc_off; dC += bc_off;
  const int n_chunks = (n + kL - 1) / kL;

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

  for (int chunk = n_chunks - 1; chunk >= 0; --chunk) {
    const int t0 = chunk * kL;
    __syncthreads();
    stage(us, u, e0, channels, t0, n);
    stage_delta(dts, delta, delta_bias, e0, channels, t0, n);
    stage(zs, z, e0, channels, t0, n);
    stage(dos, dout, e0, channels, t0, n);
    stage_bc(bs, Bm, t0, n);
    stage_bc(cs, Cm, t0, n);
    for (int i = threadIdx.x; i < kScanStates * kL; i += kThreads) dbs[i] = dcs[i] = 0.f;
    __syncthreads();

    // Recompute: states at the start of each 16-step sub-chunk, and y for every step.
    float hsub[kL / kSub][kPer];
    {
      float h[kPer];
#pragma unroll
      for (int j = 0; j < kPer; ++j)
        h[j] = (chunk > 0 && valid)
                   ? states[((static_cast<size_t>(b) * channels + e) * n_chunks + chunk - 1) * kScanStates + quarter * kPer + j]
                   : 0.f;
#pragma unroll
      for (int s = 0; s < kL / kSub; ++s) {
#pragma unroll
        for (int j = 0; j < kPer; ++j) hsub[s][j] = h[j];
#pragma unroll 4
        for (int i = 0; i < kSub; ++i) {
          const int t = s * kSub + i;
          const float dt = dts[ch * kPad + t], x = us[ch * kPad + t];
          float y = 0.f;
#pragma unroll
          for (int j = 0; j < kPer; ++j) {
            const int js = quarter * kPer + j;
            h[j] = exp2f(dt * a2[j]) * h[j] + dt * x * bs[js * kL + t];
            y += h[j] * cs[js * kL + t];
          }
          y = quad_sum(y);
          if (quarter == 0) ys[ch * kPad + t] = y + d_skip * x;
        }
      }
    }
    __syncwarp();

#pragma unroll
    for (int s = kL / kSub - 1; s >= 0; --s) {
      float hist[kSub][kPer];
#pragma unroll
      for (int i = 0; i < kSub; ++i) {
        const int t = s * kSub + i;
        const float dt = dts[ch * kPad + t], x = us[ch * kPad + t];
#pragma unroll
        for (int j = 0; j < kPer; ++j) {
          const float prev = i == 0 ? hsub[s][j] : hist[i - 1][j];
          hist[i][j] = exp2f(dt * a2[j]) * prev + dt * x * bs[(quarter * kPer + j) * kL + t];
        }
      }
#pragma unroll
      for (int i = kSub - 1; i >= 0; --i) {
        const int t = s * kSub + i;
        const float dt = dts[ch * kPad + t], x = us[ch * kPad + t];
        const float zz = zs[ch * kPad + t], go = dos[ch * kPad + t];
        const float sz = sigmoid(zz);
        const float dy = go * zz * sz;
        float ddt = 0.f, dx = 0.f, gb[kPer], gc[kPer];
#pragma unroll
        for (int j = 0; j < kPer; ++j) {
          const int js = quarter * kPer + j;
          const float bj = bs[js * kL + t], cj = cs[js * kL + t];
          dh[j] += dy * cj;
          const float decay = exp2f(dt * a2[j]);
          const float prev = i == 0 ? hsub[s][j] : hist[i - 1][j];
          const float g_decay = dh[j] * prev * decay;  // ∂/∂(ΔA) of the decay term
          ddt += g_decay * a[j] + dh[j] * x * bj;
          dx += dh[j] * dt * bj;
          gb[j] = dh[j] * dt * x;
          gc[j] = dy * hist[i][j];
          da_acc[j] += g_decay * dt;
          dh[j] *= decay;
        }
        ddt = quad_sum(ddt);
        dx = quad_sum(dx);
        // Sum dB, dC over the warp's 8 channels (lanes differing in bits 2..4).
#pragma unroll
        for (int j = 0; j < kPer; ++j) {
#pragma unroll
          for (int o = 4; o < 32; o <<= 1) {
            gb[j] += __shfl_xor_sync(0xffffffffu, gb[j], o);
            gc[j] += __shfl_xor_sync(0xffffffffu, gc[j], o);
          }
        }
        if (lane < 4) {
#pragma unroll
          for (int j = 0; j < kPer; ++j) {
            atomicAdd(&dbs[(quarter * kPer + j) * kL + t], gb[j]);
            atomicAdd(&dcs[(quarter * kPer + j) * kL + t], gc[j]);
          }
        }
        __syncwarp();
        if (quarter == 0) {
          const float y = ys[ch * kPad + t];
          us[ch * kPad + t] = dx + dy * d_skip;                          // du
          const float g_delta = ddt * (1.f - __expf(-dt));              // dδ = dΔ σ(δ + b)
          dts[ch * kPad + t] = g_delta;
          zs[ch * kPad + t] = go * y * sz * (1.f + zz * (1.f - sz));     // dz
          dd_acc += dy * x;
          dbias_acc += g_delta;
        }
      }
    }
    __syncthreads();
    unstage(us, du, e0, channels, t0, n);
    unstage(dts, ddelta, e0, channels, t0, n);
    unstage(zs, dz, e0, channels, t0, n);
    for (int i = threadIdx.x; i < kScanStates * kL; i += kThreads) {
      const int j = i / kL, t = i % kL, tt = t0 + t;
      if (tt < n) {
        atomicAdd(dB + static_cast<size_t>(j) * n + tt, dbs[i]);
        atomicAdd(dC + static_cast<size_t>(j) * n + tt, dcs[i]);
      }
    }
  }
  if (valid) {
#pragma unroll
    for (int j = 0; j < kPer; ++j) atomicAdd(dA + e * kScanStates + quarter * kPer + j, da_acc[j]);
    if (quarter == 0) {
      atomicAdd(dD + e, dd_acc);
      if (ddelta_bias) atomicAdd(ddelta_bias + e, dbias_acc);
    }
  }
}

void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("mixers/cuda/selective_scan.cu: ") + what + ": " + cudaGetErrorString(err));
}

void check_shape(const ScanShape& sh) {
  if (sh.states != kScanStates)
    throw std::invalid_argument("mixers/cuda/selective_scan: d_state " + std::to_string(sh.states) +
                                " (the CUDA kernel supports " + std::to_string(kScanStates) + ")");
}

template <class T>
void forward_typed(const ScanShape& sh, const void* u, const void* delta, const float* A, const void* B,
                   const void* C, const float* D, const void* z, const float* bias, void* out, float* states,
                   cudaStream_t stream) {
  const dim3 grid((sh.channels + kChannels - 1) / kChannels, sh.batch);
  scan_forward_kernel<T><<<grid, kThreads, 0, stream>>>(
      static_cast<const T*>(u), static_cast<const T*>(delta), A, static_cast<const T*>(B), static_cast<const T*>(C),
      D, static_cast<const T*>(z), bias, static_cast<T*>(out), states, sh.channels, sh.n);
  check_launch("forward");
}

template <class T>
void backward_typed(const ScanShape& sh, const void* u, const void* delta, const float* A, const void* B,
                    const void* C, const float* D, const void* z, const float* bias, const float* states,
                    const void* dout, void* du, void* ddelta, float* dA, float* dB, float* dC, float* dD, void* dz,
                    float* dbias, cudaStream_t stream) {
  const dim3 grid((sh.channels + kChannels - 1) / kChannels, sh.batch);
  const size_t smem = (5 * kChannels * kPad + 4 * kScanStates * kL) * sizeof(float);
  auto kernel = scan_backward_kernel<T>;
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  kernel<<<grid, kThreads, smem, stream>>>(
      static_cast<const T*>(u), static_cast<const T*>(delta), A, static_cast<const T*>(B), static_cast<const T*>(C),
      D, static_cast<const T*>(z), bias, states, static_cast<const T*>(dout), static_cast<T*>(du),
      static_cast<T*>(ddelta), dA, dB, dC, dD, static_cast<T*>(dz), dbias, sh.channels, sh.n);
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
