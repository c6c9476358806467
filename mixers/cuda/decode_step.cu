// One decoding step of Mamba-1's two elementwise stages, each one kernel (issue 13: a decode step
// of mamba-546m was about 30 small kernels per layer, most of its time):
//
// causal_conv_step: the causal depthwise convolution's step (mixers/causal_depthwise_conv.h),
//   with the SiLU Mamba puts after it fused:
//     c_t[j] = b[j] + Σ_{i<k-1} w[j,i] · history[j,i] + w[j,k-1] · a_t[j],   out = SiLU(c_t) or c_t
//     history[j] ← (history[j,1..k-2], a_t[j])                               (in place)
// selective_state_update: the selective scan's step (mixers/selective_scan.h, selective_scan_step):
//     Δ = softplus(δ + b_δ);  h[j] ← exp(Δ A[j]) h[j] + Δ u B[j]  (in place);
//   with δ = Σ_r W_Δ[e, r] δ_low[r] where the dt projection comes with the step (Mamba's rank-R δ);
//     y = (Σ_j h[j] C[j] + D u) · SiLU(z)
//
// causal_conv_step: one thread per (sequence, channel).  selective_state_update: one group of 16
// consecutive lanes per (sequence, channel), lane l holding states l, l + 16, ...: a warp's loads
// and stores of the state [B, E, n] and of A [E, n] are contiguous (one thread per channel
// walking its n states made every warp access touch 32 rows n floats apart), and y is summed over
// the group by shuffles, as is δ's product over r (lane l takes r = l, l + 16, ...: W_Δ's row read
// in 32-byte pieces).  Arithmetic in float32; activations in `element` (the model's dtype),
// the SSM state and A, D, b_δ float32.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>


#include "core/cuda/dependent_launch.cuh"
#include "core/cuda/elements.cuh"
#include "mixers/cuda/launch.h"

namespace mixlab::cuda::detail {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float silu(float x) { return x * sigmoid(x); }

template <typename T>
__global__ void causal_conv_step_kernel(ConvStepShape s, const T* __restrict__ a_t, T* __restrict__ history,
                                        const T* __restrict__ weight, const T* __restrict__ bias, T* __restrict__ out) {
  const long long index = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  const bool active = index < static_cast<long long>(s.batch) * s.channels;
  const int b = active ? static_cast<int>(index / s.channels) : 0, c = active ? static_cast<int>(index % s.channels) : 0;
  const int taps = s.kernel;
  const T* w = weight + static_cast<long long>(c) * taps;
  // The bias and the newest tap's weight are constants: read before the wait for a_t's kernel.
  const float first = active && bias ? to_f(bias[c]) : 0.f, w_newest = active ? to_f(w[taps - 1]) : 0.f;
  wait_for_prerequisites();
  let_dependents_launch();
  if (!active) return;
  T* h = history + (static_cast<long long>(b) * s.channels + c) * (taps - 1);  // [k-1], oldest first
  const float a = to_f(a_t[static_cast<long long>(b) * s.a_row_stride + c]);
  float acc = first;
  for (int i = 0; i < taps - 1; ++i) acc += to_f(w[i]) * to_f(h[i]);
  acc += w_newest * a;
  for (int i = 0; i + 1 < taps - 1; ++i) h[i] = h[i + 1];
  h[taps - 2] = a_t[static_cast<long long>(b) * s.a_row_stride + c];
  store_f(out + static_cast<long long>(b) * s.channels + c, s.silu ? silu(acc) : acc);
}

constexpr int kGroup = 16;  // lanes per (sequence, channel) in selective_state_update
constexpr int kHeldRank = 8;  // W_Δ's values per lane read before the wait: ranks up to 128

// The sum of v over the 16 lanes of a group (groups are aligned 16-lane halves of the warp); every
// lane of the warp must call it.
__device__ __forceinline__ float group_sum(float v) {
#pragma unroll
  for (int offset = kGroup / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

template <typename T>
__global__ void selective_state_update_kernel(StateUpdateShape s, float* __restrict__ state, const T* __restrict__ u,
                                              const T* __restrict__ delta, const float* __restrict__ A,
                                              const T* __restrict__ B, const T* __restrict__ C,
                                              const float* __restrict__ D, const T* __restrict__ z,
                                              const float* __restrict__ delta_bias, const T* __restrict__ delta_weight,
                                              T* __restrict__ out) {
  const long long thread = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  const long long channel = thread / kGroup;  // b·E + e
  const int lane = static_cast<int>(thread % kGroup);
  // No early return: every lane of the warp takes part in the shuffles below.
  const bool active = channel < static_cast<long long>(s.batch) * s.channels;
  const int b = active ? static_cast<int>(channel / s.channels) : 0, e = active ? static_cast<int>(channel % s.channels) : 0;
  // Constants, read before the wait for the kernel that writes δ, u, B, C
  // (core/cuda/dependent_launch.cuh): W_Δ's first values of this lane (r = lane + 16 i), b_δ.
  const T* w = delta_weight + static_cast<long long>(e) * s.delta_rank;
  float w_held[kHeldRank];
#pragma unroll
  for (int i = 0; i < kHeldRank; ++i) {
    const int r = lane + kGroup * i;
    w_held[i] = active && r < s.delta_rank ? to_f(w[r]) : 0.f;
  }
  const float bias = active && delta_bias ? delta_bias[e] : 0.f;
  wait_for_prerequisites();
  let_dependents_launch();

  const T* delta_row = delta + static_cast<long long>(b) * s.delta_row_stride;
  float step = 0.f;
  if (s.delta_rank > 0) {  // δ = Σ_r W_Δ[e, r] δ_low[r], over the group's lanes
    float partial = 0.f;
    if (active) {
#pragma unroll
      for (int i = 0; i < kHeldRank; ++i) {
        const int r = lane + kGroup * i;
        if (r < s.delta_rank) partial += w_held[i] * to_f(delta_row[r]);
      }
      for (int r = lane + kGroup * kHeldRank; r < s.delta_rank; r += kGroup) partial += to_f(w[r]) * to_f(delta_row[r]);
    }
    step = group_sum(partial);
  } else if (active) {
    step = to_f(delta_row[e]);
  }
  float x = 0.f, y = 0.f;
  if (active) {
    x = to_f(u[static_cast<long long>(b) * s.u_row_stride + e]);
    step = softplus(step + bias);
    float* h = state + channel * s.n;
    const float* a = A + static_cast<long long>(e) * s.n;
    const T* b_row = B + static_cast<long long>(b) * s.bc_row_stride;
    const T* c_row = C + static_cast<long long>(b) * s.bc_row_stride;
    for (int j = lane; j < s.n; j += kGroup) {
      const float next = expf(step * a[j]) * h[j] + step * x * to_f(b_row[j]);
      h[j] = next;
      y += next * to_f(c_row[j]);
    }
  }
  y = group_sum(y);
  if (!active || lane != 0) return;
  if (D) y += D[e] * x;
  if (z) y *= silu(to_f(z[static_cast<long long>(b) * s.z_row_stride + e]));
  store_f(out + channel, y);
}

int blocks_for(long long threads) { return static_cast<int>((threads + kThreads - 1) / kThreads); }

// f(T{}) with T the C++ type of `element`.
template <typename F>
void with_element(ScanElement element, F&& f) {
  switch (element) {
    case ScanElement::f32: f(float{}); break;
    case ScanElement::bf16: f(__nv_bfloat16{}); break;
    case ScanElement::fp16: f(__half{}); break;
  }
}

}  // namespace

void causal_conv_step(const ConvStepShape& s, const void* a_t, void* history, const void* weight, const void* bias,
                      void* out, void* stream) {
  const int blocks = blocks_for(static_cast<long long>(s.batch) * s.channels);
  with_element(s.element, [&](auto element) {
    using T = decltype(element);
    launch_dependent("causal_conv_step", causal_conv_step_kernel<T>, dim3(blocks), dim3(kThreads), 0,
                     static_cast<cudaStream_t>(stream), s, static_cast<const T*>(a_t), static_cast<T*>(history),
                     static_cast<const T*>(weight), static_cast<const T*>(bias), static_cast<T*>(out));
  });
}

void selective_state_update(const StateUpdateShape& s, float* state, const void* u, const void* delta, const float* A,
                            const void* B, const void* C, const float* D, const void* z, const float* delta_bias,
                            const void* delta_weight, void* out, void* stream) {
  const int blocks = blocks_for(static_cast<long long>(s.batch) * s.channels * kGroup);
  with_element(s.element, [&](auto element) {
    using T = decltype(element);
    launch_dependent("selective_state_update", selective_state_update_kernel<T>, dim3(blocks), dim3(kThreads), 0,
                     static_cast<cudaStream_t>(stream), s, state, static_cast<const T*>(u),
                     static_cast<const T*>(delta), A, static_cast<const T*>(B), static_cast<const T*>(C), D,
                     static_cast<const T*>(z), delta_bias, static_cast<const T*>(delta_weight), static_cast<T*>(out));
  });
}

}  // namespace mixlab::cuda::detail
