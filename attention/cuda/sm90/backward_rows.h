#pragma once
// The row-wise passes around the sm90 backwards (window_backward.h, checkpoint_backward.h), one
// read of each operand, as FlashAttention-3 does them:
//
//   before   D_t = Σ_d dO_td O_td for every row t, and the float32 dQ accumulator zeroed;
//   after    dQ_t = scale · (accumulator row t), bf16 (the window backward; the checkpoint
//            backward's self-pair kernel converts its own).
//
// These were LibTorch expressions in the binding, (dO.float() * O.float()).sum(-1) and
// (accumulator * scale).to(bf16): five passes over float32 copies of [B·H, N, d], where these
// read dO and O once (before) and the accumulator once (after).  The reference is the float64
// autograd of the backwards' tests (tests/test_sm90_window.cpp, tests/test_sm90_checkpoint.cpp).

namespace mixlab::cuda::sm90 {

// dout, o: [B·H, N, d] bf16, contiguous, 16-byte aligned; delta: [B·H, N] float32;
// dq_accumulator: [B·H, d / 64, n_padded, 64] float32 (every row zeroed, the padding too).
void backward_prologue(int batch_heads, int n, int n_padded, int head_dim, const void* dout, const void* o,
                       float* delta, float* dq_accumulator, void* stream);

// dq: [B·H, N, d] bf16, 16-byte aligned; dq[bh, t, 64 b + c] = bf16(scale · dq_accumulator[bh, b, t, c]).
void dq_from_accumulator(int batch_heads, int n, int n_padded, int head_dim, float scale, const float* dq_accumulator,
                         void* dq, void* stream);

}  // namespace mixlab::cuda::sm90
