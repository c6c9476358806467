#pragma once
// SCOUT checkpoint attention, forward, on Hopper's wgmma (wgmma.cuh), head dim d = 64 or 128, bf16:
//
//   o_t = Σ_{j ∈ J(t)} softmax_j(q_t·k_j · scale) v_j,   J(t) = {t} ∪ {cS + S − 1 < t}  (c ≥ 0)
//
// (attention/checkpoint_attention.h).  The checkpoints are read as a compact key block: tile j of
// a block's keys is checkpoints 128j .. 128j + 127, gathered from every S-th token row by cp.async,
// so the products cost the kept pairs (Σ_t ⌊t/S⌋), not N²; a row's own token starts its online
// softmax (m = q_t·k_t, l = 1, O = v_t) before the first tile.  Block, warpgroups, the producer's
// ring of stages and the pipelined loop as in window_forward.h (two stages and the producer's spare
// registers at d 128); the backward (d 64 and 128): checkpoint_backward.h.
// The reference is float64 masked attention (tests/test_sm90_checkpoint.cpp).

namespace mixlab::cuda::sm90 {

struct CheckpointForwardShape {
  int batch_heads = 0;  // B·H
  int n = 0;            // tokens per sequence
  int segment = 0;      // S ≥ 1
  int head_dim = 64;    // d: 64 or 128
  float scale = 0.f;    // usually d^-1/2
};

// q, k, v, o: [B·H, N, d] bf16, contiguous; lse: [B·H, N] float32 (natural log).
void checkpoint_forward(const CheckpointForwardShape& shape, const void* q, const void* k, const void* v, void* o,
                        float* lse, void* stream);

}  // namespace mixlab::cuda::sm90
