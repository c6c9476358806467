#pragma once
// Sliding-window causal attention, forward, on Hopper's wgmma (wgmma.cuh): the first sm90
// attention kernel, head dim 64, bf16.
//
//   o_t = Σ_{t−W < j ≤ t} softmax_j(q_t·k_j · scale) v_j,      lse_t = log Σ_j exp(q_t·k_j · scale)
//
// (W ≥ N is full causal attention.)  A block owns 128 query rows, two warpgroups of 64; key/value
// tiles of 64 rows stream through double-buffered swizzled shared memory by cp.async while the
// previous tile is multiplied; S = Q Kᵀ from shared memory, the online softmax in registers, and
// O += P V with P straight from S's accumulator registers.  Only the tiles inside a warpgroup's
// band are multiplied, and only the band's edge tiles are masked.  The backward: window_backward.h.
// Not yet: TMA, producer / consumer warp specialisation, head dim 128 (the sm_80 kernels serve
// those).  The reference is float64 masked attention (tests/test_sm90_window.cpp).

namespace mixlab::cuda::sm90 {

struct WindowForwardShape {
  int batch_heads = 0;  // B·H
  int n = 0;            // tokens per sequence
  int window = 0;       // W ≥ 1
  float scale = 0.f;    // usually 64^-1/2
};

// q, k, v, o: [B·H, N, 64] bf16, contiguous; lse: [B·H, N] float32 (natural log).
void window_forward(const WindowForwardShape& shape, const void* q, const void* k, const void* v, void* o, float* lse,
                    void* stream);

}  // namespace mixlab::cuda::sm90
