#pragma once
// SCOUT checkpoint attention (arXiv 2509.00935; docs/schemes.md, "SCOUT checkpoint attention").
//
// Segments of S tokens; the checkpoint of segment m is its last token, p_m = mS + S - 1.
// Query t attends to itself and to the checkpoints strictly before it, under ONE softmax:
//
//   A(t) = {t} ∪ {p_m : p_m < t},   |A(t)| = 1 + ⌊t/S⌋
//   o_t  = Σ_{j ∈ A(t)} softmax_j(q_t·k_j / √d_h) v_j
//
// equivalently the dense mask M[t, j] = (j == t) or (j mod S == S-1 and j < t).  Checkpoint keys
// are ordinary keys (RoPE at their own position); a checkpoint query sees itself once, through
// the self term.  Tokens 0..S-1 see only themselves.
//
// Summaries (the `summary` option).  The key/value standing for completed segment m is either
//   token:  k̄_m = k_{p_m},                      v̄_m = v_{p_m}          (SCOUT, the default)
//   mean:   k̄_m = (1/S) Σ_{j=mS}^{p_m} k_j,      v̄_m = (1/S) Σ v_j     (pooled segment, TransNeXt)
// and A(t) reads {t} ∪ {summary m : p_m < t} with the same one softmax.  With `mean`, keys are
// pooled after RoPE, each at its own position, so q_t·k̄_m is the mean of the segment's logits.
//
// The reference forward chunks the queries: block [t0, t1) is scored against the ⌊(t1-1)/S⌋
// checkpoints it can see, never an N×N matrix: time O(N·N/S·d), memory per block O(b·N/S).

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>

namespace mixlab {

// Query blocks of the chunked forward; forward and cost() both use it.
struct CheckpointPlan {
  int64_t segment_size = 0;  // S
  int64_t query_block = 0;   // b
  int64_t seq_len = 0;       // N

  int64_t n_blocks() const { return query_block > 0 ? (seq_len + query_block - 1) / query_block : 0; }
  int64_t block_start(int64_t i) const { return i * query_block; }
  int64_t block_end(int64_t i) const { return std::min(seq_len, (i + 1) * query_block); }
  // Checkpoints visible to some query of block i: those before its last query, ⌊(t1-1)/S⌋.
  int64_t block_checkpoints(int64_t i) const { return (block_end(i) - 1) / segment_size; }
  // Checkpoint score entries the forward computes per head (masked ones included).
  int64_t score_entries() const;
};

// What stands for a completed segment in the softmax (see above).
enum class SegmentSummary { Token, Mean };

// query_block = 0 picks b = 256 (capped at N).
CheckpointPlan plan_checkpoint_attention(int64_t seq_len, int64_t segment_size,
                                         int64_t query_block = 0);

// q, k, v: [B, H, N, d_h] -> [B, H, N, d_h], scale d_h^-1/2, in the op's dtype (the autocast
// dtype under CUDA autocast, else the inputs' common dtype).  Where the CUDA kernels take the
// input (cuda::checkpoint_supported) and the summary is `Token` they run; otherwise this
// blockwise reference does (the `Mean` summary has no kernel, on any device).
torch::Tensor checkpoint_attention(const torch::Tensor& q, const torch::Tensor& k,
                                   const torch::Tensor& v, int64_t segment_size,
                                   int64_t query_block = 0,
                                   SegmentSummary summary = SegmentSummary::Token);

// The summary keys or values of the first `count` segments: x: [B, H, N, d_h] -> [B, H, count, d_h].
torch::Tensor segment_summaries(const torch::Tensor& x, int64_t segment_size, int64_t count,
                                SegmentSummary summary);

// Σ_{t=0}^{N-1} (1 + ⌊t/S⌋) in closed form: with N = qS + r,  N + S·q(q-1)/2 + r·q.
double checkpoint_pairs(int64_t seq_len, int64_t segment_size);

}  // namespace mixlab
