#pragma once
// Sliding-window causal attention (Samba, arXiv 2406.07522, §2; Mistral, arXiv 2310.06825, §2).
//
// Window convention: query t sees the W keys t-W+1 .. t, itself included (Samba's
// FlashAttention window (W-1, 0), docs/schemes.md).  With W >= N this is full causal attention.
//
//   o_t = Σ_{j = max(0, t-W+1)}^{t} softmax_j(q_t·k_j / √d_h) v_j
//
// The reference forward is blockwise: queries are cut into blocks of b, and block [t0, t0+b)
// is scored against its key span [t0-W+1, t0+b) only (W+b-1 keys, zero-padded before position 0
// and masked), so time and memory are O(N·(W+b)), never N×N.

#include <torch/torch.h>

#include <cstdint>

namespace mixlab {

// How the blockwise forward cuts a sequence of `seq_len` tokens.  forward and cost() both use it,
// so cost().matmul_flops is exactly the work the forward issues.
struct SlidingWindowPlan {
  int64_t window = 0;      // effective window min(W, N): with W >= N every key is visible anyway
  int64_t query_block = 0; // b, queries per block
  int64_t n_blocks = 0;    // ⌈N / b⌉ (the last block is zero-padded)
  int64_t key_span = 0;    // W_eff + b - 1 keys per block, masked entries included

  // Score entries the forward computes per head (masked and padded ones included).
  int64_t score_entries() const { return n_blocks * query_block * key_span; }
};

// query_block = 0 picks b = clamp(W_eff, 32, 256), capped at N: a block of about the window
// keeps the masked fraction of the span near one half while the batched products stay large.
SlidingWindowPlan plan_sliding_window(int64_t seq_len, int64_t window, int64_t query_block = 0);

// q, k, v: [B, H, N, d_h] -> [B, H, N, d_h], scale d_h^-1/2, in the op's dtype (the autocast
// dtype under CUDA autocast, else the inputs' common dtype).  Where the CUDA kernels take the
// input (cuda::sliding_window_supported) they run; otherwise this blockwise reference does.
torch::Tensor sliding_window_attention(const torch::Tensor& q, const torch::Tensor& k,
                                       const torch::Tensor& v, int64_t window,
                                       int64_t query_block = 0);

// Σ_{t=0}^{N-1} min(t+1, W): the query-key pairs the window keeps.
double sliding_window_pairs(int64_t seq_len, int64_t window);

}  // namespace mixlab
