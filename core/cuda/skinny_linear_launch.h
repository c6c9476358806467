#pragma once
// Plain C++ launcher of the few-row linear kernel (core/cuda/skinny_linear.cu; no LibTorch here,
// see skinny_linear_binding.cpp):
//
//   y[m, o] = Σ_k x[m, k] · W[o, k]  (+ b[o]),   m < rows,  o < out,  k < in
//
// bf16 operands, float32 accumulation (tensor-core mma), y rounded to bf16.  Made for a decode
// step's products (rows = the batch, at most a few dozen), where the time is reading W once.
//   x: [rows, in] with row stride x_row_stride (elements), unit column stride
//   W: [out, in] contiguous;  b: [out] or null;  y: [rows, out] contiguous
// Every pointer 16-byte aligned; in and x_row_stride multiples of kSkinnyVector.
//
// With norm_weight g ([in] bf16, not null) x's rows are RMS-normalised inside the product
// (core/input_norm.h): y[m, o] = rsqrt(mean_k x[m, k]² + norm_eps) · Σ_k bf16(x[m, k]·g[k]) W[o, k].

#include <cstdint>

namespace mixlab::cuda::detail {

constexpr int kSkinnyVector = 8;     // bf16 elements per 16-byte load
constexpr int kSkinnyMaxRows = 64;   // rows beyond this are cuBLAS's (the weight is re-read per 16 rows)

struct SkinnyLinearShape {
  long long rows = 0, in = 0, out = 0, x_row_stride = 0;
  const void* norm_weight = nullptr;  // g: [in] bf16, or null: x as given
  float norm_eps = 0.f;
};

void skinny_linear_bf16(const SkinnyLinearShape& shape, const void* x, const void* weight, const void* bias, void* y,
                        void* stream);

// y = r + (x Wᵀ + b), the product rounded to bf16 before the add and the sum rounded again (as
// the two ops round): a decode step's output projection with the residual add as its store.
// r, y: [rows, out] contiguous (y may be r).
void skinny_linear_add_bf16(const SkinnyLinearShape& shape, const void* x, const void* weight, const void* bias,
                            const void* residual, void* y, void* stream);

}  // namespace mixlab::cuda::detail
