#pragma once
// Entry points of the CUDA kernels for mixers/ (see attention/cuda/kernels.h for the rules).

#include "core/input_norm.h"

#include <torch/torch.h>

namespace mixlab::cuda {

// Mamba-1 selective scan, fused with the D skip and the SiLU(z) gate, differentiable:
//   u, delta, z: [B, E, N];  A: [E, n] (float32);  B, C: [B, n, N];  D, delta_bias: [E] (float32)
//   delta' = softplus(delta + delta_bias);  h_t = exp(delta'_t A) h_{t-1} + delta'_t u_t B_t
//   y_t = <h_t, C_t> + D u_t;  returns y ⊙ SiLU(z): [B, E, N] in the op's dtype (under CUDA autocast
//   the autocast dtype, as for a custom op; else the common dtype of u, delta, z, B, C), float32 state.
// Whether the kernels take these inputs: CUDA, d_state n = 16, D and z given, the
// sequence operands bf16/fp16/float32 once cast to the op's dtype.  Callers run the reference
// otherwise; selective_scan below refuses them.
bool selective_scan_supported(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                              const torch::Tensor& B, const torch::Tensor& C, const torch::Tensor& D,
                              const torch::Tensor& z, const torch::Tensor& delta_bias);

torch::Tensor selective_scan(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                             const torch::Tensor& B, const torch::Tensor& C, const torch::Tensor& D,
                             const torch::Tensor& z, const torch::Tensor& delta_bias);
// The same forward without gradients, and the state after its last step: {out, h_{N-1}} with
// h_{N-1}: [B, E, n] float32, the kernel's last saved state (it holds h still past the end).  For
// a prefill; = mixlab::selective_scan_with_final_state (mixers/selective_scan.h).  Refuses inputs
// that require gradients while grad mode is on.
std::pair<torch::Tensor, torch::Tensor> selective_scan_with_final_state(
    const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A, const torch::Tensor& B,
    const torch::Tensor& C, const torch::Tensor& D, const torch::Tensor& z, const torch::Tensor& delta_bias);

// One decoding step, not differentiable (decode_step.cu); taken only where the *_supported
// check passes, by the references that own these ops:
//   causal_conv_step = mixlab::causal_depthwise_conv_step (mixers/causal_depthwise_conv.h):
//     history [B, C, k-1] (contiguous, updated in place), a_t [B, C], weight [C, 1, k], bias [C]
//     or undefined, one float dtype; returns c_t [B, C], SiLU(c_t) when `silu`
//   selective_state_update = mixlab::selective_scan_step (mixers/selective_scan.h): state
//     [B, E, n] float32 (contiguous, updated in place); u_t, delta_t, z_t [B, E] and B_t, C_t
//     [B, n] of one float dtype (unit column stride, any row stride); A [E, n], D, delta_bias [E]
//     float32; returns out_t [B, E] in u_t's dtype.  With delta_weight W_Δ [E, R] (contiguous, u_t's
//     dtype) delta_t is [B, R] and the kernel forms δ W_Δᵀ itself
bool causal_conv_step_supported(const torch::Tensor& history, const torch::Tensor& a_t, const torch::Tensor& weight,
                                const torch::Tensor& bias);
torch::Tensor causal_conv_step(torch::Tensor& history, const torch::Tensor& a_t, const torch::Tensor& weight,
                               const torch::Tensor& bias, bool silu);
bool selective_state_update_supported(const torch::Tensor& state, const torch::Tensor& u_t,
                                      const torch::Tensor& delta_t, const torch::Tensor& A, const torch::Tensor& B_t,
                                      const torch::Tensor& C_t, const torch::Tensor& D, const torch::Tensor& z_t,
                                      const torch::Tensor& delta_bias, const torch::Tensor& delta_weight);
torch::Tensor selective_state_update(torch::Tensor& state, const torch::Tensor& u_t, const torch::Tensor& delta_t,
                                     const torch::Tensor& A, const torch::Tensor& B_t, const torch::Tensor& C_t,
                                     const torch::Tensor& D, const torch::Tensor& z_t, const torch::Tensor& delta_bias,
                                     const torch::Tensor& delta_weight);

// Mamba's input stage of a step as one kernel (linear_conv_step.cu), not differentiable; taken by
// mixlab::linear_conv_step (mixers/linear_conv_step.h) where linear_conv_step_supported passes:
// x, weight, bias as core's skinny_linear takes them (bf16, x [rows, in], weight [out, in], bias
// [out] or undefined), history [rows, C, k-1] bf16 contiguous (updated in place) with C <= out,
// conv_weight [C, 1, k] and conv_bias [C] or undefined, bf16 contiguous.  Returns {xz [rows, out],
// u [rows, C]}: xz = x Wᵀ + b, u = SiLU(conv step of xz[:, :C]).  With a norm, x is h and the
// product reads RMSNorm(h)·g (core/input_norm.h).
bool linear_conv_step_supported(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                                const torch::Tensor& history, const torch::Tensor& conv_weight,
                                const torch::Tensor& conv_bias, const InputNorm& norm = {});
std::pair<torch::Tensor, torch::Tensor> linear_conv_step(const torch::Tensor& x, const torch::Tensor& weight,
                                                         const torch::Tensor& bias, torch::Tensor& history,
                                                         const torch::Tensor& conv_weight,
                                                         const torch::Tensor& conv_bias, const InputNorm& norm = {});

// SwiGLU's gate, fused (swiglu.cu), differentiable (one backward kernel writes da and db):
//   swiglu(a, b) = SiLU(a)·b;   da = g·b·σ(a)·(1 + a·(1 − σ(a))),   db = g·SiLU(a)
// a, b: [..., hidden] of one shape and dtype, each viewable as rows of unit column stride (e.g. the
// gate half of a [B, 2·hidden] product); returns [..., hidden] contiguous in that dtype.  Taken by
// mixlab::swiglu (mixers/swiglu.h) where swiglu_supported passes: CUDA, bf16 / fp16 / float32, fewer
// than 2^31 elements.
bool swiglu_supported(const torch::Tensor& a, const torch::Tensor& b);
torch::Tensor swiglu(const torch::Tensor& a, const torch::Tensor& b);

// The gated MLP's gate and up products with SwiGLU as their store (swiglu_linear.cu), not
// differentiable; taken by mixlab::swiglu_linear (mixers/swiglu.h) where swiglu_linear_supported
// passes: x and weight_pairs as core's skinny_linear takes them (bf16, no gradient, no bias), the
// weight's rows 2·hidden with hidden a multiple of 8 and paired as mixlab::interleave_gate_up
// lays them.  Returns SiLU(x W_gᵀ)·(x W_uᵀ): [rows, hidden].
bool swiglu_linear_supported(const torch::Tensor& x, const torch::Tensor& weight_pairs, const InputNorm& norm = {});
torch::Tensor swiglu_linear(const torch::Tensor& x, const torch::Tensor& weight_pairs, const InputNorm& norm = {});

// Mamba's causal depthwise convolution fused with its SiLU (causal_conv_silu.cu), differentiable:
//   u[b, e, t] = SiLU(bias[e] + Σ_{i<K} w[e, i] · x[b, t − (K−1−i), e])      (x at t < 0 is 0)
// x: [B, N, E] with channel stride 1, any batch and time strides (e.g. the first E columns of
// in_proj's [B, N, 2E]: time stride 2E), read in place; weight [E, 1, K], bias [E] or undefined;
// returns u: [B, E, N] contiguous in x's dtype.  Taken by mixlab::causal_conv_silu
// (mixers/causal_depthwise_conv.h) where causal_conv_silu_supported passes: CUDA, x bf16 / fp16 /
// float32 (the autocast dtype while autocast is on), weight and bias float32 or x's dtype, K ≤ 8.
bool causal_conv_silu_supported(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);
torch::Tensor causal_conv_silu(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);

}  // namespace mixlab::cuda

