#pragma once
// The Mamba-1 selective scan (Gu & Dao 2023, Algorithm 2), fused with the D skip and the SiLU(z)
// gate exactly as mixers/cuda/kernels.h documents its CUDA counterpart:
//
//   Δ_t[e]    = softplus( delta_t[e] + delta_bias[e] )
//   h_t[e,:]  = exp(Δ_t[e] · A[e,:]) ⊙ h_{t−1}[e,:] + Δ_t[e] · u_t[e] · B_t[:]       h_{−1} = 0
//   y_t[e]    = < h_t[e,:], C_t[:] > + D[e] · u_t[e]
//   out_t[e]  = y_t[e] · SiLU( z_t[e] )
//
// Shapes: u, delta, z: [B, E, N];  A: [E, n];  B, C: [B, n, N];  D, delta_bias: [E].
// D, z and delta_bias may be undefined tensors (no skip, no gate, no bias).

#include <torch/torch.h>

namespace mixlab {

// The dtype a recurrence runs in: float64 stays float64, everything else accumulates in float32.
inline torch::ScalarType recurrence_type(const torch::Tensor& reference) {
  return reference.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
}

// Returns out: [B, E, N] in u's dtype.  The recurrence runs in float64 for float64 input and in
// float32 otherwise.  Where the CUDA kernels take the input (cuda::selective_scan_supported: d_state
// 16, D and z given) they run; otherwise the reference below: one vectorised [B, E, n]
// multiply-add per time step, differentiable by autograd.
torch::Tensor selective_scan(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                             const torch::Tensor& B, const torch::Tensor& C, const torch::Tensor& D,
                             const torch::Tensor& z, const torch::Tensor& delta_bias);

// One step of the same recurrence, for decoding.  `state` h: [B, E, n] holds the next state
// afterwards (the reference replaces it; on CUDA without gradients one kernel writes it in place,
// cuda::selective_state_update).
//   u_t, delta_t, z_t: [B, E];  A: [E, n];  B_t, C_t: [B, n];  D, delta_bias: [E]  ->  out_t: [B, E]
// With `delta_weight` W_Δ: [E, R] given, delta_t is Mamba's low-rank δ: [B, R] and Δ's
// pre-activation is δ W_Δᵀ (the dt projection, in the state's dtype: one kernel with the step on
// CUDA, so a decode step does not launch that product on its own).
torch::Tensor selective_scan_step(torch::Tensor& state, const torch::Tensor& u_t,
                                  const torch::Tensor& delta_t, const torch::Tensor& A,
                                  const torch::Tensor& B_t, const torch::Tensor& C_t,
                                  const torch::Tensor& D, const torch::Tensor& z_t,
                                  const torch::Tensor& delta_bias, const torch::Tensor& delta_weight = {});

// The state after the last of N steps, in closed form: with Δ_t as above and R_t = Σ_{s=t+1}^{N−1} Δ_s,
//   h_{N−1}[e,:] = Σ_t exp(A[e,:] · R_t[e]) ⊙ Δ_t[e] · u_t[e] · B_t[:]
// (the product of the decays after t is the exponential of their summed exponents).  For a
// prefill: the parallel scan's outputs plus the state decoding continues from.  R_t is a reverse
// cumulative sum, so the recent terms (small R_t, the ones that matter) carry no cancellation.
// Shapes: u, delta: [B, E, N]; A: [E, n]; B: [B, n, N]; delta_bias: [E] or undefined.  Returns
// h: [B, E, n] in float64 for float64 input, float32 otherwise; time chunks keep the [B, E, n, T]
// temporary under `chunk_elements`.
torch::Tensor selective_scan_final_state(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                                         const torch::Tensor& B, const torch::Tensor& delta_bias,
                                         int64_t chunk_elements = int64_t{1} << 26);

// selective_scan's output and the state after its last step, {out, h_{N−1}} (h as
// selective_scan_final_state returns it), for a prefill.  Without gradients on CUDA, where the
// kernels take the inputs, one kernel gives both; otherwise selective_scan and
// selective_scan_final_state (differentiable).
std::pair<torch::Tensor, torch::Tensor> selective_scan_with_final_state(
    const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A, const torch::Tensor& B,
    const torch::Tensor& C, const torch::Tensor& D, const torch::Tensor& z, const torch::Tensor& delta_bias);

// softplus⁻¹(y) = y + log(−expm1(−y)), the inverse of log(1 + e^x); used to initialise Δ biases.
torch::Tensor inverse_softplus(const torch::Tensor& y);

// Δ initial values as Mamba draws them: dt = exp(U(log dt_min, log dt_max)) clamped at `floor`.
// Returns softplus⁻¹(dt), the bias that makes softplus(0 + bias) = dt.  [count], float32.
torch::Tensor sample_dt_bias(int64_t count, double dt_min, double dt_max, double floor);

}  // namespace mixlab
