#pragma once
// Plain C++ launcher of the fused RoPE kernel (attention/cuda/rope.cu; no LibTorch here, so the .cu
// compiles with nvcc alone).  rope_binding.cpp checks shapes and dtypes and calls it.
//
// Rotate-half RoPE of one row x = [x1, x2] (two halves of d_h/2) at position p, with the table
// rows c = [c1, c2] = cos[p], s = [s1, s2] = sin[p]:
//
//   forward    y = x·c + rotate_half(x)·s:   y1 = x1·c1 − x2·s1,   y2 = x2·c2 + x1·s2
//   transpose  the adjoint of that map, which is the backward (dx from dy = g):
//                                             dx1 = g1·c1 + g2·s2,  dx2 = g2·c2 − g1·s1
//
// (For RoPE's own tables c1 = c2 and s1 = s2, and the transpose is the forward with sin negated:
// R(θ)ᵀ = R(−θ); the kernel keeps the general form, so it is the adjoint for any tables.)

#include <cstdint>

namespace mixlab::cuda::detail {

enum class RopeElement { f32, bf16, fp16 };

// in, out: [B, H, N, d_h] at element strides in_stride / out_stride over (B, H, N), unit stride in
// d_h; cos, sin: [N, d_h] contiguous.  Arithmetic in float32.
struct RopeShape {
  RopeElement in = RopeElement::f32, table = RopeElement::f32, out = RopeElement::f32;
  int batch = 0, heads = 0, n = 0, head_dim = 0;  // head_dim even
  long long in_stride[3] = {0, 0, 0};
  long long out_stride[3] = {0, 0, 0};
  bool transpose = false;  // false: the forward; true: its transpose (the backward)
};

// Whether the kernel is built for these element types: (T, T, T) for T in f32, bf16, fp16, and,
// for bf16 / fp16 T beside float32 tables, (T, f32, f32) and (f32, f32, T) (a float32 result and
// its gradient) and (T, f32, T) (under autocast: the result in the autocast dtype, and its gradient).
bool rope_elements_supported(RopeElement in, RopeElement table, RopeElement out);

// Needs B·H·N·d_h/2 < 2^31.  Throws std::invalid_argument for an unsupported shape or element
// combination, std::runtime_error when the launch fails.
void rope(const RopeShape& shape, const void* in, const void* cos, const void* sin, void* out, void* stream);

}  // namespace mixlab::cuda::detail
