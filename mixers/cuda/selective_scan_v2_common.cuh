#pragma once
// Constants and helpers shared by the v2 selective-scan kernels (selective_scan_v2.cu: the
// equations and the layout of the work): threads per channel, shuffles over a channel's lanes and
// over a warp's channels, the B|C tile, the time-slice scratch rows.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>

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
// Whether the backward keeps a block's 64 decays e^{Δ A} from its recompute for the reverse walk
// (16 exponentials per step instead of 32) or recomputes them: kept at P = 2 (2 blocks of 4
// warps per SM, about 240 registers), recomputed at P = 4 (2 blocks of 8 warps, 128 registers).
template <int P>
constexpr bool kKeepDecays = P == 2;
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

}  // namespace
}  // namespace mixlab::cuda::detail
