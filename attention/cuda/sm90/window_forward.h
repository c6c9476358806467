#pragma once
// Sliding-window causal attention, forward, on Hopper's wgmma (wgmma.cuh): the first sm90
// attention kernel, head dim d = 64 or 128, bf16.
//
//   o_t = Σ_{t−W < j ≤ t} softmax_j(q_t·k_j · scale) v_j,      lse_t = log Σ_j exp(q_t·k_j · scale)
//
// (W ≥ N is full causal attention.)  A block owns 128 query rows, two consumer warpgroups of 64,
// and a producer warpgroup that streams key/value tiles of 128 rows by cp.async through a ring of
// four swizzled shared-memory stages with full/empty mbarriers (key_pipeline.cuh); S = Q Kᵀ from
// shared memory (m64n128), the online softmax in registers, O += P V with P from S's registers, and
// S of the next tile in flight with P V while the softmax runs (attend_band, online_softmax.cuh).
// Only the tiles inside a warpgroup's band are multiplied, and only the band's edge tiles are
// masked.  At d 128 the ring has two stages and the consumers take the producer's spare registers
// (setmaxnreg).  The backward (d 64 and 128): window_backward.h.  Not yet: TMA, a persistent
// grid.  The reference is float64 masked attention (tests/test_sm90_window.cpp).

namespace mixlab::cuda::sm90 {

struct WindowForwardShape {
  int batch_heads = 0;  // B·H
  int n = 0;            // tokens per sequence
  int window = 0;       // W ≥ 1
  int head_dim = 64;    // d: 64 or 128
  float scale = 0.f;    // usually d^-1/2
};

// q, k, v, o: [B·H, N, d] bf16, contiguous; lse: [B·H, N] float32 (natural log).
void window_forward(const WindowForwardShape& shape, const void* q, const void* k, const void* v, void* o, float* lse,
                    void* stream);

}  // namespace mixlab::cuda::sm90
