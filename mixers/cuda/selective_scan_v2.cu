// Mamba-1 selective scan, second implementation ("v2", MIXLAB_SCAN_KERNEL=v2; scan_binding.cpp).
// The same op, inputs, outputs and saved states as selective_scan.cu (v1):
//
//   Δ_t = softplus(δ_t + b_δ)                                  (per channel e)
//   h_t[j] = exp(Δ_t A[j]) h_{t-1}[j] + Δ_t u_t B_t[j]          j = 0..15
//   y_t = Σ_j h_t[j] C_t[j] + D u_t,   out_t = y_t · SiLU(z_t)
//
// Layout of the work: P threads per channel (forward 1, 2 or 4, backward 2 or 4: ScanShape::
// forward_split and backward_split, MIXLAB_SCAN_V2_SPLIT in scan_binding.cpp; default 2 forward,
// 4 backward), each
// holding S = 16/P of its states in registers, so a thread runs S independent recurrences per
// step and y needs log2(P) shuffles.  A block owns K = 64 channels of one sequence (64·P
// threads) and walks time in chunks of kL = 32 steps: the chunk's u, Δ, z (and dout) are staged
// as float [K x kL] tiles (rows padded to 33 floats: the threads of a warp read one step of 32/P
// channels without bank conflicts), B and C as one float [kL x 36] tile, step-major (the 16 B
// then the 16 C of a step side by side, read as float4 broadcasts).  Staging is plain coalesced
// loads along time (rows of [B, E, N] are time-contiguous); blocks are small (38 KB forward, 68 KB
// backward) so several share an SM and hide each other's loads and barriers.
//
// Forward: writes the state after every 16 steps, [B, E, ceil(N/16), 16] float32 (v1's layout; the
// last slot is the state after step N-1: padded steps have Δ = 0, which holds h).
//
// Backward, per 16-step block from the last to the first, per group of 4 of the thread's states:
// recompute the block's 17 states h_{t0-1..t0+15} from the saved state (in registers), then walk
// the block in reverse with the adjoint λ = ∂L/∂h (exp(Δ A) recomputed: keeping the decays as
// well would double the registers):
//   dy = dout·SiLU(z);  λ_t += dy C_t;  g_t = λ_t h_{t-1} e^{Δ_t A}   (∂L/∂(Δ_t A) per state)
//   dΔ_t = Σ_j g A + u Σ_j λ B;   du_t = Δ_t Σ_j λ B + dy D;   dA += Σ_t g Δ_t;   dD += Σ_t dy u
//   dB_t = Σ_e λ Δ u;   dC_t = Σ_e dy h_t;   y_t = Σ_j C h_t + D u  (dz = dout·y·SiLU'(z))
//   dδ = dΔ σ(δ + b_δ) = dΔ (1 - e^{-Δ});   db_δ += dδ;   λ_{t-1} = λ_t e^{Δ_t A}
// Σ_j over the thread's states accumulate per (channel, step) in shared tiles (the P lanes of a
// channel summed by shuffles first); dB, dC are summed over the warp's channels by a
// reduce-scatter of shuffles, over the block's warps by shared-memory atomics, over the grid
// by float atomics.
//
// Time slices (selective_scan_v2_slices.cuh) only where the blocks over B x E/64 do not cover the
// SMs once (selective_scan_time_splits_v2): a slice's summary pass costs another 16 exponentials
// per step, so batch 8, E = 2048 (256 blocks, 8 warps per SM at P = 2) runs unsliced.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "core/cuda/elements.cuh"
#include "mixers/cuda/launch.h"

namespace mixlab::cuda::detail {
namespace {

// Threads per channel P (ScanShape::forward_split, backward_split; 0 picks these): 1, 2 or 4.
constexpr int kDefaultForwardP = 2;
constexpr int kDefaultBackwardP = 4;
// Resident backward blocks per SM the registers must allow (its 68 KB of shared memory allow 3;
// at 3, P = 2 spills).  batch 8, E = 2048 gives 256 blocks, under 2 per SM anyway.
constexpr int kBackwardMinBlocks = 2;
constexpr int kForwardMinBlocks = 4;  // of 38 KB shared memory each (5 fit)
constexpr int kK = 64;                                 // channels per block
constexpr int kL = 32;                                 // steps per staged chunk
constexpr int kTP = kL + 1;                            // padded row of a float [K x kL] tile
constexpr int kBC = 36;                                // floats per step in the B|C tile (16 + 16 + pad)
constexpr int kRedP = 2 * kScanStates + 1;             // padded row of the dB|dC tile [kL x 33]
constexpr int kSave = kScanStateStride;                // steps between saved states (16)
constexpr int kGroup = 4;                              // states per backward pass
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
static_assert(kL % kSave == 0 && kL == 32, "a chunk is whole save blocks; unstage maps a warp to a row");
static_assert(kBC % 4 == 0 && kBC >= 2 * kScanStates, "B|C rows are float4-aligned");

template <int P>
struct Split {
  static_assert(P == 1 || P == 2 || P == 4, "1, 2 or 4 threads per channel");
  static constexpr int kStates = kScanStates / P;  // states per thread
  static constexpr int kThreads = kK * P;
};

// Sum over the P lanes of a channel (lanes differing in bits below P); every lane gets the sum.
template <int P>
__device__ __forceinline__ float lane_group_sum(float x) {
  if constexpr (P >= 2) x += __shfl_xor_sync(0xffffffffu, x, 1);
  if constexpr (P >= 4) x += __shfl_xor_sync(0xffffffffu, x, 2);
  return x;
}

// v[0..8) summed over the warp's lanes that share lane % P (its 32/P channels): a reduce-scatter
// over lane masks 16, 8, 4 (the lane keeps value (lane >> 2) & 7), then a plain sum over the
// channel masks below 4 that remain (P = 1: 2 and 1; P = 2: 2).  7 + (2, 1, 0) shuffles.
template <int P>
__device__ __forceinline__ float channel_sum8(const float (&v)[8], int lane) {
  const bool b4 = lane & 16, b3 = lane & 8, b2 = lane & 4;
  float w[4], x[2];
#pragma unroll
  for (int k = 0; k < 4; ++k)
    w[k] = (b4 ? v[k + 4] : v[k]) + __shfl_xor_sync(0xffffffffu, b4 ? v[k] : v[k + 4], 16);
#pragma unroll
  for (int k = 0; k < 2; ++k)
    x[k] = (b3 ? w[k + 2] : w[k]) + __shfl_xor_sync(0xffffffffu, b3 ? w[k] : w[k + 2], 8);
  float r = (b2 ? x[1] : x[0]) + __shfl_xor_sync(0xffffffffu, b2 ? x[0] : x[1], 4);
  if constexpr (P <= 2) r += __shfl_xor_sync(0xffffffffu, r, 2);
  if constexpr (P == 1) r += __shfl_xor_sync(0xffffffffu, r, 1);
  return r;
}
// The lanes that write channel_sum8's result (one per value and lane % P).
template <int P>
__device__ __forceinline__ bool channel_sum8_writer(int lane) {
  return (lane & (P == 1 ? 3 : P == 2 ? 2 : 0)) == 0;
}

// The chunk's B_t and C_t as floats, step-major: bc[t·kBC + j] = B[j, t0 + t], bc[t·kBC + 16 + j] =
// C[j, t0 + t] (0 past N).  Bm, Cm: this sequence's [16, N].  A thread takes one step and 8
// values (loads coalesced along t; its two float4 stores hit distinct banks across the warp).
template <int THREADS, class T>
__device__ __forceinline__ void stage_bc(float* bc, const T* Bm, const T* Cm, int t0, int n) {
  for (int i = threadIdx.x; i < kL * 4; i += THREADS) {
    const int t = i % kL, g = i / kL, tt = t0 + t;
    const T* src = (g < 2 ? Bm : Cm) + static_cast<size_t>((g % 2) * 8) * n + tt;
    float v[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] = tt < n ? to_f(src[static_cast<size_t>(k) * n]) : 0.f;
    float4* dst = reinterpret_cast<float4*>(bc + t * kBC + g * 8);
    dst[0] = make_float4(v[0], v[1], v[2], v[3]);
    dst[1] = make_float4(v[4], v[5], v[6], v[7]);
  }
}

// This thread's `count` consecutive states j0.. of step t from the B|C tile (count % 4 == 0).
template <int count>
__device__ __forceinline__ void load_states(const float* row, int j0, float (&out)[count]) {
#pragma unroll
  for (int k = 0; k < count; k += 4) {
    const float4 v = *reinterpret_cast<const float4*>(row + j0 + k);
    out[k] = v.x, out[k + 1] = v.y, out[k + 2] = v.z, out[k + 3] = v.w;
  }
}

// Row of the time-slice scratch ([B, E, G] rows of 16 states, then [B, E, G] sums of Δ; G = gridDim.z).
__device__ __forceinline__ size_t slice_row(int b, int e, int slice, int channels) {
  return (static_cast<size_t>(b) * channels + e) * gridDim.z + slice;
}

// ------------------------------------------------------------------------------------- forward

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

#include "mixers/cuda/selective_scan_v2_backward.cuh"
#include "mixers/cuda/selective_scan_v2_slices.cuh"

namespace mixlab::cuda::detail {
namespace {

void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("mixers/cuda/selective_scan_v2.cu: ") + what + ": " + cudaGetErrorString(err));
}

template <class Kernel>
void set_smem(Kernel kernel, size_t smem) {
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
             "raising the dynamic shared-memory limit");
}

void check_shape(const ScanShape& sh) {
  if (sh.states != kScanStates)
    throw std::invalid_argument("mixers/cuda/selective_scan_v2: d_state " + std::to_string(sh.states) +
                                " (the CUDA kernel supports " + std::to_string(kScanStates) + ")");
  const int f = sh.forward_split, b = sh.backward_split;
  if ((f != 0 && f != 1 && f != 2 && f != 4) || (b != 0 && b != 2 && b != 4))
    throw std::invalid_argument("mixers/cuda/selective_scan_v2: " + std::to_string(f) + " forward, " +
                                std::to_string(b) +
                                " backward threads per channel (valid: forward 1, 2, 4; backward 2, 4 (at 1 its "
                                "registers spill); 0 for the default)");
}

// fn(std::integral_constant<int, P>) for P = split (0: fallback); ONE: whether P = 1 is compiled.
template <bool ONE, class Fn>
void with_split(int split, int fallback, Fn&& fn) {
  switch (split == 0 ? fallback : split) {
    case 1:
      if constexpr (ONE) fn(std::integral_constant<int, 1>{});
      break;
    case 2: fn(std::integral_constant<int, 2>{}); break;
    default: fn(std::integral_constant<int, 4>{}); break;
  }
}

// Chunks per slice: the G slices cover N in whole 32-step chunks.
int slice_chunks(const ScanShape& sh) {
  const int n_chunks = (sh.n + kL - 1) / kL;
  return (n_chunks + sh.time_splits - 1) / sh.time_splits;
}

void check_splits(const ScanShape& sh, const float* workspace) {
  const int n_chunks = (sh.n + kL - 1) / kL;
  if (sh.time_splits < 1 || sh.time_splits > n_chunks || (sh.time_splits - 1) * slice_chunks(sh) >= n_chunks)
    throw std::invalid_argument("mixers/cuda/selective_scan_v2: time_splits " + std::to_string(sh.time_splits) +
                                " for N = " + std::to_string(sh.n) +
                                " (use selective_scan_time_splits_v2: every slice must hold a chunk)");
  if (sh.time_splits > 1 && !workspace)
    throw std::invalid_argument("mixers/cuda/selective_scan_v2: time_splits > 1 needs a workspace of "
                                "selective_scan_workspace_floats(shape) floats");
}

// Steps (1) and (2) of the time slices (selective_scan_v2_slices.cuh): the slices' summaries, then
// the carry, which leaves each slice's incoming state (or adjoint) in workspace[0, B·E·G·16).
// w_in: u (forward) or dout (backward); BC: B (forward) or C (backward).
template <class T, int P, bool BACKWARD>
void slice_states(const ScanShape& sh, const void* w_in, const void* delta, const void* z, const float* A,
                  const void* BC, const float* bias, float* workspace, cudaStream_t stream) {
  float* delta_sum = workspace + static_cast<size_t>(sh.batch) * sh.channels * sh.time_splits * kScanStates;
  const dim3 grid((sh.channels + kK - 1) / kK, sh.batch, sh.time_splits);
  auto kernel = slice_summary_kernel<T, P, BACKWARD>;
  set_smem(kernel, sizeof(SummaryTiles));
  kernel<<<grid, Split<P>::kThreads, sizeof(SummaryTiles), stream>>>(
      static_cast<const T*>(w_in), static_cast<const T*>(delta), static_cast<const T*>(z), A,
      static_cast<const T*>(BC), bias, workspace, delta_sum, sh.channels, sh.n, slice_chunks(sh));
  check_cuda(cudaGetLastError(), BACKWARD ? "backward summary of time slices" : "forward summary of time slices");
  const long long threads = static_cast<long long>(sh.batch) * sh.channels * kScanStates;
  slice_carry_kernel<<<static_cast<unsigned>((threads + 255) / 256), 256, 0, stream>>>(
      workspace, delta_sum, A, sh.batch, sh.channels, sh.time_splits, BACKWARD);
  check_cuda(cudaGetLastError(), "carry over time slices");
}

template <class T, int P>
void forward_typed(const ScanShape& sh, const void* u, const void* delta, const float* A, const void* B,
                   const void* C, const float* D, const void* z, const float* bias, void* out, float* states,
                   float* workspace, cudaStream_t stream) {
  const float* h_in = nullptr;
  if (sh.time_splits > 1) {
    slice_states<T, P, false>(sh, u, delta, z, A, B, bias, workspace, stream);
    h_in = workspace;
  }
  const dim3 grid((sh.channels + kK - 1) / kK, sh.batch, sh.time_splits);
  auto kernel = scan_v2_forward_kernel<T, P>;
  set_smem(kernel, sizeof(ForwardTiles));
  kernel<<<grid, Split<P>::kThreads, sizeof(ForwardTiles), stream>>>(
      static_cast<const T*>(u), static_cast<const T*>(delta), A, static_cast<const T*>(B), static_cast<const T*>(C),
      D, static_cast<const T*>(z), bias, static_cast<T*>(out), states, h_in, sh.channels, sh.n, slice_chunks(sh));
  check_cuda(cudaGetLastError(), "forward");
}

template <class T, int P>
void backward_typed(const ScanShape& sh, const void* u, const void* delta, const float* A, const void* B,
                    const void* C, const float* D, const void* z, const float* bias, const float* states,
                    const void* dout, void* du, void* ddelta, float* dA, float* dB, float* dC, float* dD, void* dz,
                    float* dbias, float* workspace, cudaStream_t stream) {
  const float* dh_in = nullptr;
  if (sh.time_splits > 1) {
    slice_states<T, P, true>(sh, dout, delta, z, A, C, bias, workspace, stream);
    dh_in = workspace;
  }
  const dim3 grid((sh.channels + kK - 1) / kK, sh.batch, sh.time_splits);
  auto kernel = scan_v2_backward_kernel<T, P>;
  set_smem(kernel, sizeof(BackwardTiles));
  kernel<<<grid, Split<P>::kThreads, sizeof(BackwardTiles), stream>>>(
      static_cast<const T*>(u), static_cast<const T*>(delta), A, static_cast<const T*>(B), static_cast<const T*>(C),
      D, static_cast<const T*>(z), bias, states, static_cast<const T*>(dout), static_cast<T*>(du),
      static_cast<T*>(ddelta), dA, dB, dC, dD, static_cast<T*>(dz), dbias, dh_in, sh.channels, sh.n,
      slice_chunks(sh));
  check_cuda(cudaGetLastError(), "backward");
}

}  // namespace

int selective_scan_time_splits_v2(const ScanShape& sh) {
  static const int sms = [] {
    int device = 0, count = 0;
    check_cuda(cudaGetDevice(&device), "cudaGetDevice");
    check_cuda(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device), "reading the SM count");
    return count;
  }();
  const long long blocks = static_cast<long long>((sh.channels + kK - 1) / kK) * sh.batch;
  if (blocks == 0 || blocks >= sms) return 1;
  const int wanted = static_cast<int>(std::min<long long>((2LL * sms + blocks - 1) / blocks, sh.n / kScanMinSlice));
  if (wanted <= 1) return 1;
  const int n_chunks = (sh.n + kL - 1) / kL, per_slice = (n_chunks + wanted - 1) / wanted;
  return (n_chunks + per_slice - 1) / per_slice;  // every slice non-empty
}

void selective_scan_forward_v2(const ScanShape& sh, const void* u, const void* delta, const float* A, const void* B,
                               const void* C, const float* D, const void* z, const float* bias, void* out,
                               float* states, float* workspace, void* stream_ptr) {
  check_shape(sh);
  if (sh.batch == 0 || sh.channels == 0 || sh.n == 0) return;
  check_splits(sh, workspace);
  auto stream = static_cast<cudaStream_t>(stream_ptr);
  with_split<true>(sh.forward_split, kDefaultForwardP, [&](auto split) {
    constexpr int P = decltype(split)::value;
    switch (sh.element) {
      case ScanElement::f32: forward_typed<float, P>(sh, u, delta, A, B, C, D, z, bias, out, states, workspace, stream); break;
      case ScanElement::bf16:
        forward_typed<__nv_bfloat16, P>(sh, u, delta, A, B, C, D, z, bias, out, states, workspace, stream);
        break;
      case ScanElement::fp16:
        forward_typed<__half, P>(sh, u, delta, A, B, C, D, z, bias, out, states, workspace, stream);
        break;
    }
  });
}

void selective_scan_backward_v2(const ScanShape& sh, const void* u, const void* delta, const float* A, const void* B,
                                const void* C, const float* D, const void* z, const float* bias, const float* states,
                                const void* dout, void* du, void* ddelta, float* dA, float* dB, float* dC, float* dD,
                                void* dz, float* dbias, float* workspace, void* stream_ptr) {
  check_shape(sh);
  if (sh.batch == 0 || sh.channels == 0 || sh.n == 0) return;
  check_splits(sh, workspace);
  auto stream = static_cast<cudaStream_t>(stream_ptr);
#define MIXLAB_SCAN_V2_BACKWARD(T)                                                                             \
  backward_typed<T, P>(sh, u, delta, A, B, C, D, z, bias, states, dout, du, ddelta, dA, dB, dC, dD, dz, dbias, \
                       workspace, stream)
  with_split<false>(sh.backward_split, kDefaultBackwardP, [&](auto split) {
    constexpr int P = decltype(split)::value;
    switch (sh.element) {
      case ScanElement::f32: MIXLAB_SCAN_V2_BACKWARD(float); break;
      case ScanElement::bf16: MIXLAB_SCAN_V2_BACKWARD(__nv_bfloat16); break;
      case ScanElement::fp16: MIXLAB_SCAN_V2_BACKWARD(__half); break;
    }
  });
#undef MIXLAB_SCAN_V2_BACKWARD
}

}  // namespace mixlab::cuda::detail
