#pragma once
// Plain C++ launchers of the attention kernels (no LibTorch here, so the .cu files compile with
// nvcc alone).  attention_binding.cpp checks shapes and dtypes and calls these.
//
// Layout: q [B, H, N, HD]; k, v [B, H, N_keys, HD], each with its own strides (AttentionLayout:
// the heads of a projection are read in place, e.g. the transposed [B, N, H, HD] output of the q/k/v
// product).  For checkpoint attention k and v are the compressed checkpoints (rows S-1, 2S-1, ... of
// the full keys, N_keys = floor(N/S)) and k_self, v_self the full keys and values (the self term).
// lse is log2-domain, contiguous [B·H, N]: for every row, lse = log2 Σ_j exp2(s_tj · scale · log2 e),
// the softmax normaliser that the backward reuses.

#include <cstdint>

namespace mixlab::cuda::detail {

enum class Element { bf16, fp16 };
enum class Mask { sliding_window, checkpoint };

// Where the rows of one [B, H, rows, HD] operand sit, in elements, with a unit stride in HD: row t of
// batch b, head h starts at b·batch + h·head + t·row.  The kernels load 16-byte chunks, so every
// stride and the base address must be multiples of 16 bytes (the binding checks, and copies an
// operand to contiguous where they are not).
// row is 32-bit (registers in the kernels' inner loops): the binding keeps rows · row < 2^31.
struct RowStrides {
  int64_t batch = 0, head = 0;
  int row = 0;
};
inline RowStrides contiguous_rows(int heads, int rows, int head_dim) {
  return {int64_t{heads} * rows * head_dim, int64_t{rows} * head_dim, head_dim};
}

// The strides of every operand of one call.  k, v: the keys the mask walks (checkpoints: the compact
// [B, H, N_keys, HD] copies); k_self, v_self: the full keys and values (checkpoints' self term).
struct AttentionLayout {
  int heads = 1;  // H, to split the block's B·H index into (b, h)
  RowStrides q, k, v, k_self, v_self, out, dout, dq, dk, dv;
};

struct AttentionShape {
  Element element = Element::bf16;
  Mask mask = Mask::sliding_window;
  int batch_heads = 0;  // B·H
  int n = 0;            // queries (and full keys)
  int n_keys = 0;       // rows of k, v: n (sliding window) or floor(n / S) (checkpoint)
  int head_dim = 0;     // 64 or 128
  int window = 0;       // sliding window: query t sees keys t-window+1 .. t
  int segment = 0;      // checkpoint: S
  float scale = 0.f;    // softmax scale, usually head_dim^-1/2
  AttentionLayout layout;
};

bool attention_supported(int head_dim);

// out [B, H, N, HD] (strides: layout.out); lse [B·H, N] float32.
void attention_forward(const AttentionShape& shape, const void* q, const void* k, const void* v,
                       const void* k_self, const void* v_self, void* out, float* lse, void* stream);

// Gradients.  delta: scratch [B·H, N] float32.  dq, dk, dv [B, H, N, HD] in the input dtype, strides
// layout.dq, .dk, .dv.  Checkpoint: dk_ckpt, dv_ckpt contiguous scratch [B·H, N_keys, HD] float32.
void attention_backward(const AttentionShape& shape, const void* q, const void* k, const void* v,
                        const void* k_self, const void* v_self, const void* out, const void* dout,
                        const float* lse, float* delta, void* dq, void* dk, void* dv, float* dk_ckpt,
                        float* dv_ckpt, void* stream);

}  // namespace mixlab::cuda::detail
