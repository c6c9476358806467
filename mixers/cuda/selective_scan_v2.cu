// Mamba-1 selective scan, second implementation ("v2", MIXLAB_SCAN_KERNEL=v2; scan_binding.cpp).
// The same op, inputs, outputs and saved states as selective_scan.cu (v1):
//
//   Δ_t = softplus(δ_t + b_δ)                                  (per channel e)
//   h_t[j] = exp(Δ_t A[j]) h_{t-1}[j] + Δ_t u_t B_t[j]          j = 0..15
//   y_t = Σ_j h_t[j] C_t[j] + D u_t,   out_t = y_t · SiLU(z_t)
//
// Layout of the work: P threads per channel, each holding S = 16/P of its states in registers,
// so a thread runs S independent recurrences per step and y needs log2(P) shuffles (P: forward
// 1, 2 or 4, backward 2 or 4; ScanShape::forward_split / backward_split, MIXLAB_SCAN_V2_SPLIT in
// scan_binding.cpp; default 2 forward, 4 backward).  A block owns K = 64 channels of one sequence
// (64·P threads) and walks time in chunks of kL = 32 steps: the chunk's Δ, u, SiLU(z) (forward)
// or Δ, u, dy, SiLU'(z)·dout (backward) are staged as float [K x kL] tiles (rows padded to 33
// floats: a warp reads one step of 32/P channels without bank conflicts), B and C as one float
// [kL x 36] tile, step-major (the 16 B then the 16 C of a step side by side, read as float4
// broadcasts).  Staging is plain coalesced loads along time (rows of [B, E, N] are time-contiguous),
// unrolled so that each thread has several loads in flight; other resident blocks hide the rest.
// Shared memory: forward 38 KB per block (all P), backward 81 KB (P = 2) or 98 KB (P = 4).
// Forward (selective_scan_v2_forward.cuh) and backward (selective_scan_v2_backward.cuh) kernels,
// helpers (selective_scan_v2_common.cuh), time slices (selective_scan_v2_slices.cuh); this file
// launches them.  tests/emulation/scan_v2.cpp runs their source on a host against float64.
//
// Forward: writes the state after every 16 steps, [B, E, ceil(N/16), 16] float32 (v1's layout; the
// last slot is the state after step N-1: padded steps have Δ = 0, which holds h).
//
// Backward, per 16-step block from the last to the first, per group of 4 of the thread's states:
// recompute the block's 17 states h_{t0-1..t0+15} from the saved state (in registers), then walk
// the block in reverse with the adjoint λ = ∂L/∂h (the decays exp(Δ A): kept from the recompute
// at P = 2, 255 registers, 16 exp2 per step; recomputed in the walk at P = 4, 128 registers, 32
// exp2 per step; kKeepDecays in selective_scan_v2_common.cuh):
//   dy = dout·SiLU(z);  λ_t += dy C_t;  g_t = λ_t h_{t-1} e^{Δ_t A}   (∂L/∂(Δ_t A) per state)
//   dΔ_t = Σ_j g A + u Σ_j λ B;   du_t = Δ_t Σ_j λ B + dy D;   dA += Σ_t g Δ_t;   dD += Σ_t dy u
//   dB_t = Σ_e λ Δ u;   dC_t = Σ_e dy h_t;   y_t = Σ_j C h_t + D u  (dz = dout·y·SiLU'(z))
//   dδ = dΔ σ(δ + b_δ) = dΔ (1 - e^{-Δ});   db_δ += dδ;   λ_{t-1} = λ_t e^{Δ_t A}
// Σ_j over the thread's states accumulate per (channel, step) in shared tiles (the P lanes of a
// channel summed by shuffles first); dB, dC are summed over the warp's channels by a
// reduce-scatter of shuffles, over the block's warps in shared memory (a tile per warp), over the
// grid by float atomics (one per 2 channel-steps, half of v1's).
//
// Occupancy at batch 8, E = 2048 (256 blocks on 132 SMs, all resident at once): forward P = 2,
// 128 threads, 94 registers: ~8 warps per SM with 8 independent recurrences each; backward P = 4,
// 256 threads, 128 registers, 2 blocks per SM: ~16 warps per SM, 4 recurrences each (v1: 4 states
// per thread, its backward 2 blocks of 4 warps per SM by its 108 KB of shared memory).
//
// Time slices (selective_scan_v2_slices.cuh) only where the blocks over B x E/64 do not cover the
// SMs once (selective_scan_time_splits_v2): a slice's summary pass costs another 16 exponentials
// per step, so batch 8, E = 2048 runs unsliced; batch 1, E = 1536 is cut into up to 11 slices.

#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "mixers/cuda/launch.h"
#include "mixers/cuda/selective_scan_v2_backward.cuh"
#include "mixers/cuda/selective_scan_v2_common.cuh"
#include "mixers/cuda/selective_scan_v2_forward.cuh"
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
  set_smem(kernel, sizeof(BackwardTiles<P>));
  kernel<<<grid, Split<P>::kThreads, sizeof(BackwardTiles<P>), stream>>>(
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
