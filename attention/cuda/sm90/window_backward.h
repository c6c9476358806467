#pragma once
// Sliding-window causal attention, backward, on Hopper's wgmma (wgmma.cuh), head dim 64, bf16:
// the gradients of window_forward.h's o given dO, from the forward's lse.  With
//   P_ts = exp(q_t·k_s · scale − lse_t) on the window (t − W < s ≤ t), D_t = Σ_d dO_td O_td:
//   dV_s = Σ_t P_ts dO_t,   dS_ts = P_ts (dO_t·v_s − D_t),
//   dK_s = scale Σ_t dS_ts q_t,   dQ_t = scale Σ_s dS_ts k_s.
// A block owns 64 keys (one warpgroup) and walks the query tiles of 64 rows that see them; per
// tile five products: Sᵀ = K Qᵀ and dPᵀ = V dOᵀ from shared memory, dV += Pᵀ dO and dK += dSᵀ Q
// with Pᵀ, dSᵀ from registers, and dQ = dS K with dSᵀ through shared memory, whose 64 x 64 float32
// partial is added to a float32 dQ accumulator by one bulk reduction (cp.reduce.async.bulk).
// Not yet: TMA loads, warp specialisation, head dim 128.  The reference is float64 autograd of
// masked attention (tests/test_sm90_window.cpp).

namespace mixlab::cuda::sm90 {

struct WindowBackwardShape {
  int batch_heads = 0;  // B·H
  int n = 0;            // tokens per sequence
  int n_padded = 0;     // rows of the dQ accumulator per head: N rounded up to 64
  int window = 0;       // W ≥ 1
  float scale = 0.f;
};

// q, k, v, dout: [B·H, N, 64] bf16, contiguous; lse, delta (D): [B·H, N] float32;
// dq_accumulator: [B·H, n_padded, 64] float32, zeroed (receives Σ_s dS_ts k_s, not yet scaled);
// dk, dv: [B·H, N, 64] bf16.
void window_backward(const WindowBackwardShape& shape, const void* q, const void* k, const void* v, const void* dout,
                     const float* lse, const float* delta, float* dq_accumulator, void* dk, void* dv, void* stream);

}  // namespace mixlab::cuda::sm90
