#pragma once
// Plain C++ launchers of the attention kernels (no LibTorch here, so the .cu files compile with
// nvcc alone).  attention_binding.cpp checks shapes and dtypes and calls these.
//
// Layout: q [BH, N, HD]; k, v [BH, N_keys, HD]; all contiguous.  For checkpoint attention k and v
// are the compressed checkpoints (rows S-1, 2S-1, ... of the full keys, N_keys = floor(N/S)) and
// k_self, v_self the full keys and values (the self term).  lse is log2-domain: for every row,
// lse = log2 Σ_j exp2(s_tj · scale · log2 e), the softmax normaliser that the backward reuses.

#include <cstdint>

namespace mixlab::cuda::detail {

enum class Element { bf16, fp16 };
enum class Mask { sliding_window, checkpoint };

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
};

bool attention_supported(int head_dim);

// out [BH, N, HD]; lse [BH, N] float32.
void attention_forward(const AttentionShape& shape, const void* q, const void* k, const void* v,
                       const void* k_self, const void* v_self, void* out, float* lse, void* stream);

// Gradients.  delta: scratch [BH, N] float32.  Sliding window: dk, dv [BH, N, HD] in the input
// dtype.  Checkpoint: dk_ckpt, dv_ckpt scratch [BH, N_keys, HD] float32, dk, dv [BH, N, HD].
void attention_backward(const AttentionShape& shape, const void* q, const void* k, const void* v,
                        const void* k_self, const void* v_self, const void* out, const void* dout,
                        const float* lse, float* delta, void* dq, void* dk, void* dv, float* dk_ckpt,
                        float* dv_ckpt, void* stream);

}  // namespace mixlab::cuda::detail
