#pragma once
// Sliding-window causal attention, backward, on Hopper's wgmma (wgmma.cuh), head dim d = 64 or
// 128, bf16: the gradients of window_forward.h's o given dO, from the forward's lse.  With
//   P_ts = exp(q_t·k_s · scale − lse_t) on the window (t − W < s ≤ t), D_t = Σ_d dO_td O_td:
//   dV_s = Σ_t P_ts dO_t,   dS_ts = P_ts (dO_t·v_s − D_t),
//   dK_s = scale Σ_t dS_ts q_t,   dQ_t = scale Σ_s dS_ts k_s.
// A block owns 128 keys (key_block_backward.cuh): two consumer warpgroups of 64 keys, their K, V
// in shared memory and dK, dV in registers, and a producer warpgroup that streams the query tiles
// (64 rows of Q, dO, lse, D) that see them through a ring of mbarrier-guarded stages
// (key_pipeline.cuh), shared by both consumers.  Per tile five products: Sᵀ = K Qᵀ and dPᵀ = V dOᵀ
// from shared memory, dV += Pᵀ dO with Pᵀ from registers, dK += dSᵀ Q, and dQ = dS K with dSᵀ
// through shared memory.  At d 64 (a ring of four) dK's dSᵀ comes from registers, the next tile's
// Sᵀ, dPᵀ run while this tile's exponentials do, the three gradient products of the tile before
// while the next tile's do; at d 128 (a ring of two, dV and dK m64n128) one tile at a time, dK's
// dSᵀ from shared memory and dQ in two 64-column halves.  Each warp's 16 rows of dQ's float32
// partial (per 64-column half) are added to a float32 dQ accumulator by one bulk reduction
// (cp.reduce.async.bulk).  Not yet: TMA loads.  The reference is float64 autograd of masked
// attention (tests/test_sm90_window.cpp).

namespace mixlab::cuda::sm90 {

struct WindowBackwardShape {
  int batch_heads = 0;  // B·H
  int n = 0;            // tokens per sequence
  int n_padded = 0;     // rows of the dQ accumulator per head: N rounded up to 64
  int window = 0;       // W ≥ 1
  int head_dim = 64;    // d: 64 or 128
  float scale = 0.f;    // usually d^-1/2
};

// q, k, v, dout: [B·H, N, d] bf16, contiguous; lse, delta (D): [B·H, N] float32;
// dq_accumulator: [B·H, d / 64, n_padded, 64] float32, zeroed (receives Σ_s dS_ts k_s, not yet
// scaled; column block b of dQ's row t at [bh, b, t, :]); dk, dv: [B·H, N, d] bf16.
void window_backward(const WindowBackwardShape& shape, const void* q, const void* k, const void* v, const void* dout,
                     const float* lse, const float* delta, float* dq_accumulator, void* dk, void* dv, void* stream);

}  // namespace mixlab::cuda::sm90
