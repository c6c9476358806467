#pragma once
// Plain C++ launchers of the harness's kernels (no LibTorch here; see add_rms_norm_binding.cpp).
//
// The residual add fused with the next RMSNorm (harness/cuda/add_rms_norm.cu), arithmetic in
// float32, per row of `cols` elements:
//   forward   h = x + r  (rounded to h's element),   s = rsqrt(mean(h²) + eps),   y = (h·s)·w
//   backward  g = dy·w,   dh = dh_out + s·(g − h·s²·mean(g·h)),   dx = dr = dh
//             dw = Σ_rows dy·h·s   (per-block partial sums, then one reduction: deterministic)
// Every [rows, cols] operand is contiguous and 16-byte aligned; cols a multiple of kAddNormVector
// and at most kAddNormMaxCols.

#include <cstdint>

namespace mixlab::cuda::detail {

enum class NormElement { f32, bf16, fp16 };
constexpr int kAddNormVector = 8;      // elements per vector load (16 bytes of bf16 / fp16)
constexpr int kAddNormMaxCols = 2048;  // 32 lanes x 8 vectors of kAddNormVector per row

// The element of each operand: x, h, dh_out and dh share `h`; r and dr `r`; w and dw `w`; y and
// dy `y`.  s (the saved rsqrt per row) is float32.
struct AddNormShape {
  NormElement h = NormElement::f32, r = NormElement::f32, w = NormElement::f32, y = NormElement::f32;
  long long rows = 0, cols = 0;
  float eps = 1e-6f;
};

// x, r -> h, y: [rows, cols];  w: [cols];  s: [rows] float32.  r null: h = x (RMSNorm alone; h may
// then be null, not written).
void add_rms_norm_forward(const AddNormShape& shape, const void* x, const void* r, const void* w, void* h, void* y,
                          float* s, void* stream);

// The rows of the backward's float32 partial-sum scratch for dw ([blocks, cols]): the number of
// blocks it launches on the current device for this shape (no data read, no synchronisation).
long long add_rms_norm_backward_blocks(const AddNormShape& shape);

// h, dy, dh_out: [rows, cols] (dh_out null: zero);  s: [rows];  w: [cols] ->
// dh: [rows, cols] in h's element;  dr: [rows, cols] in r's element, or null where dh serves as
// dr;  dw: [cols] in w's element, or null (then `partial` may be null too) where none is asked;
// partial: [add_rms_norm_backward_blocks(shape), cols] float32 scratch.
void add_rms_norm_backward(const AddNormShape& shape, const void* h, const float* s, const void* w, const void* dy,
                           const void* dh_out, void* dh, void* dr, float* partial, void* dw, void* stream);

// The softmax statistics of a cross entropy per row of logits [rows, vocab], contiguous
// (harness/cuda/cross_entropy_rows.cu), arithmetic in float32:
//   forward   lse_i = log Σ_v exp(l_iv),   picked_i = l_{i, y_i}  (NaN where y_i is outside [0, vocab))
//   backward  l_iv ← scale · (exp(l_iv − lse_i) − [v = y_i])   in place; scale: one float32 on the device
// targets: [rows] int64; lse, picked: [rows] float32.
enum class LogitElement { f32, bf16, fp16 };
void cross_entropy_rows_forward(LogitElement element, const void* logits, long long rows, long long vocab,
                                const long long* targets, float* lse, float* picked, void* stream);
void cross_entropy_rows_backward(LogitElement element, void* logits, long long rows, long long vocab,
                                 const long long* targets, const float* lse, const float* scale, void* stream);

// The weight gradient of a token embedding (harness/cuda/token_embedding_grad.cu):
//   grad_weight[y_t] += grad[t]   for t < count;   grad: [count, dim], grad_weight: [vocab, dim],
// both float32 and contiguous, grad_weight zeroed by the caller; tokens: [count] int64.
void token_embedding_grad(const float* grad, const long long* tokens, long long count, long long vocab, long long dim,
                          float* grad_weight, void* stream);

}  // namespace mixlab::cuda::detail
