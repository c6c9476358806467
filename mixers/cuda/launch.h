#pragma once
// Plain C++ launchers of the mixers' kernels (no LibTorch here; see scan_binding.cpp,
// decode_step_binding.cpp, swiglu_binding.cpp).
//
// Selective scan (contiguous): u, delta, z, out, du, ddelta, dz: [B, E, N] in `element`;
// B_in, C_in: [B, n, N] in `element`; A: [E, n], D, delta_bias: [E] float32.
// states: [B, E, ceil(N / kScanStateStride), n] float32, the state h after every kScanStateStride
// steps, written by the forward and read by the backward (which recomputes the states in between).

#include <cstdint>

#include "core/cuda/skinny_linear_launch.h"

namespace mixlab::cuda::detail {

enum class ScanElement { f32, bf16, fp16 };
constexpr int kScanChunk = 64;        // time steps staged in shared memory at once
constexpr int kScanStateStride = 16;  // steps between saved states
constexpr int kScanStates = 16;  // n supported by the kernels

// time_splits: G slices of time scanned by separate blocks (state passing, selective_scan.cu);
// 1 walks the whole sequence in one block per 32 channels.  Set it with selective_scan_time_splits.
struct ScanShape {
  ScanElement element = ScanElement::f32;
  int batch = 0, channels = 0, n = 0, states = 0;
  int time_splits = 1;
};

// The G that fills the current device: 1 when the blocks over batch x channels already hold half
// its resident-block slots, else enough slices of at least kScanMinSlice steps to fill them.
constexpr int kScanMinSlice = 128;
int selective_scan_time_splits(const ScanShape& shape);
// Floats of scratch the forward and the backward need for shape.time_splits: B·E·G·(n + 1) when
// G > 1 (each slice's local state and its Σ Δ), else 0 (the workspace pointer may be null).
long long selective_scan_workspace_floats(const ScanShape& shape);

void selective_scan_forward(const ScanShape& shape, const void* u, const void* delta, const float* A,
                            const void* B_in, const void* C_in, const float* D, const void* z,
                            const float* delta_bias, void* out, float* states, float* workspace, void* stream);

// dB, dC: [B, n, N] float32, dA: [E, n], dD, ddelta_bias: [E] float32; all zeroed by the caller
// (the kernel accumulates into them with atomics).
void selective_scan_backward(const ScanShape& shape, const void* u, const void* delta, const float* A,
                             const void* B_in, const void* C_in, const float* D, const void* z,
                             const float* delta_bias, const float* states, const void* dout, void* du,
                             void* ddelta, float* dA, float* dB, float* dC, float* dD, void* dz,
                             float* ddelta_bias, float* workspace, void* stream);

// One decoding step (mixers/cuda/decode_step.cu).  Row strides in elements; every other
// dimension contiguous.
//   causal_conv_step: a_t [B, C] (row stride a_row_stride); history [B, C, k-1] updated in place;
//   weight [C, k] (Conv1d's [C, 1, k]); bias [C] or null; out [B, C]; all of `element`.
struct ConvStepShape {
  ScanElement element = ScanElement::f32;
  int batch = 0, channels = 0, kernel = 0;
  long long a_row_stride = 0;
  bool silu = false;
};
void causal_conv_step(const ConvStepShape& shape, const void* a_t, void* history, const void* weight,
                      const void* bias, void* out, void* stream);

//   selective_state_update: state [B, E, n] float32 updated in place; u, delta, z [B, E] and
//   B, C [B, n] of `element` (row strides below); A [E, n], D, delta_bias [E] float32 (D, z,
//   delta_bias may be null); out [B, E] of `element`.  With delta_rank R > 0, delta is [B, R] and
//   delta_weight W_Δ [E, R] contiguous of `element`: Δ's pre-activation δ W_Δᵀ is formed in the kernel.
struct StateUpdateShape {
  ScanElement element = ScanElement::f32;
  int batch = 0, channels = 0, n = 0;
  long long u_row_stride = 0, delta_row_stride = 0, bc_row_stride = 0, z_row_stride = 0;
  int delta_rank = 0;  // R > 0: delta is [B, R] and delta_weight W_Δ [E, R]; 0: delta is [B, E]
};
void selective_state_update(const StateUpdateShape& shape, float* state, const void* u, const void* delta,
                            const float* A, const void* B, const void* C, const float* D, const void* z,
                            const float* delta_bias, const void* delta_weight, void* out, void* stream);

//   linear_conv_step (mixers/cuda/linear_conv_step.cu): Mamba's input stage of a step, bf16:
//   xz = x Wᵀ + b (skinny_linear's shape: x [rows, in], W [out, in], b [out] or null, xz
//   [rows, out]), then causal_conv_step with SiLU on xz's first `channels` columns: history
//   [rows, channels, taps-1] updated in place, conv weight [channels, taps], conv bias [channels]
//   or null, u [rows, channels].
struct LinearConvStepShape {
  SkinnyLinearShape linear;
  int channels = 0, taps = 0;
};
void linear_conv_step(const LinearConvStepShape& shape, const void* x, const void* weight, const void* bias, void* xz,
                      void* history, const void* conv_weight, const void* conv_bias, void* u, void* stream);

//   swiglu_linear (mixers/cuda/swiglu_linear.cu): the gated MLP's gate and up products and SwiGLU,
//   bf16: x [rows, in] (skinny_linear's shape, out = 2·hidden, a multiple of 16), W [2·hidden, in]
//   with W_gate's rows 8j..8j+7 then W_up's rows 8j..8j+7 for each j, hidden [rows, hidden].
void swiglu_linear_bf16(const SkinnyLinearShape& shape, const void* x, const void* weight_pairs, void* hidden,
                        void* stream);

// SwiGLU's gate (mixers/cuda/swiglu.cu), arithmetic in float32, σ(a) = 1 / (1 + e^(−a)):
//   forward   out = SiLU(a)·b = a·σ(a)·b
//   backward  da = g·b·σ(a)·(1 + a·(1 − σ(a))),   db = g·SiLU(a)
// a, b: [rows, cols] at element row strides a_row_stride, b_row_stride (unit column stride);
// out, g, da, db: [rows, cols] contiguous; all of `element`.
struct SwigluShape {
  ScanElement element = ScanElement::f32;
  long long rows = 0, cols = 0;
  long long a_row_stride = 0, b_row_stride = 0;
};
void swiglu_forward(const SwigluShape& shape, const void* a, const void* b, void* out, void* stream);
void swiglu_backward(const SwigluShape& shape, const void* a, const void* b, const void* g, void* da, void* db,
                     void* stream);

}  // namespace mixlab::cuda::detail
