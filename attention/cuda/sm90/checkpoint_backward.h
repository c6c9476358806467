#pragma once
// SCOUT checkpoint attention, backward, on Hopper's wgmma, head dim d = 64 or 128, bf16: the
// gradients of checkpoint_forward.h's o given dO, from its lse.  Visible pairs: (t, t) and (t, cS + S − 1) for
// c < ⌊t / S⌋.  Two kernels:
//   1. a block per 128 checkpoints (every S-th key row, gathered; two consumer warpgroups of 64
//      and a producer warpgroup) runs key_block_backward.cuh over the query tiles that see them
//      (queries t ≥ (c0 + 1)·S to N): the checkpoints' dK, dV into compact float32 [C, d]
//      arrays, and Σ dS K into the float32 dQ accumulator (at d 128: one tile at a time, a ring
//      of two; key_block_backward.cuh says why);
//   2. a warp per token adds the self pair (P_tt = exp(q_t·k_t · scale − lse_t),
//      dS_tt = P_tt (dO_t·v_t − D_t)) and a checkpoint's compact rows to its own, and writes
//      dq = scale (accumulator + dS_tt k_t), dk, dv in bf16.
// The reference is float64 autograd of masked attention (tests/test_sm90_checkpoint.cpp).

namespace mixlab::cuda::sm90 {

struct CheckpointBackwardShape {
  int batch_heads = 0;   // B·H
  int n = 0;             // tokens per sequence
  int n_padded = 0;      // rows of the dQ accumulator per head: N rounded up to 64
  int segment = 0;       // S ≥ 1
  int checkpoints = 0;   // C = ⌊N / S⌋ (the tokens cS + S − 1 < N)
  int c_padded = 0;      // rows of the compact checkpoint gradients per head: C rounded up to 64
  int head_dim = 64;     // d: 64 or 128
  float scale = 0.f;     // usually d^-1/2
};

// q, k, v, dout: [B·H, N, d] bf16 contiguous; lse, delta (D): [B·H, N] float32; dq_accumulator:
// [B·H, d / 64, n_padded, 64] float32 zeroed (column block b of dQ's row t at [bh, b, t, :]);
// checkpoint_dk, checkpoint_dv: [B·H, c_padded, d] float32 (scratch); dq, dk, dv: [B·H, N, d] bf16.
void checkpoint_backward(const CheckpointBackwardShape& shape, const void* q, const void* k, const void* v,
                         const void* dout, const float* lse, const float* delta, float* dq_accumulator,
                         float* checkpoint_dk, float* checkpoint_dv, void* dq, void* dk, void* dv, void* stream);

}  // namespace mixlab::cuda::sm90
