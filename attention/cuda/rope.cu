// The fused RoPE kernel of attention/cuda/rope_launch.h: one kernel for y = x·cos + rotate_half(x)·sin
// (and, with `transpose`, for its backward), where LibTorch's composed form runs five (neg, cat and
// three products and sums) and autograd as many again.
//
// One thread per V consecutive pairs (x1[i..i+V), x2[i..i+V)) of one row (b, h, p): it loads those
// 2V elements of x and of each table row, and writes 2V outputs.  Rows are addressed by strides, so
// q and k are read straight from the transposed projection output [B, N, H, d_h] and written in the
// layout the caller allocated.  V = 8 (one 16-byte load of bf16 / fp16) where d_h/2, the strides and
// the pointers allow it, else 1.
//
// Arithmetic in float32 with explicitly rounded products and sums (__fmul_rn, __fadd_rn, never fused
// into an FMA), the order of the composed form: in float32 the kernel gives LibTorch's result bit
// for bit (subnormals aside: --use_fast_math flushes them to zero); in bf16 / fp16 it rounds once
// where the composed form rounds after every operation.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "attention/cuda/rope_launch.h"
#include "core/cuda/elements.cuh"

namespace mixlab::cuda::detail {
namespace {

constexpr int kThreads = 256;

// Thread t: pairs [i, i + V) of row (b, h, p), i = V·(t mod G), G = d_h / (2V), row = t div G with
// p fastest, then h, then b.
//   forward:    y1 = x1·c1 − x2·s1,  y2 = x2·c2 + x1·s2
//   transpose:  y1 = x1·c1 + x2·s2,  y2 = x2·c2 − x1·s1
template <typename TI, typename TT, typename TO, int V>
__global__ void __launch_bounds__(kThreads)
    rope_kernel(RopeShape s, const TI* __restrict__ x, const TT* __restrict__ cos, const TT* __restrict__ sin,
                TO* __restrict__ y) {
  const unsigned half = s.head_dim / 2, groups = half / V;
  const unsigned total = static_cast<unsigned>(s.batch) * s.heads * s.n * groups;  // < 2^31 (rope())
  const unsigned index = blockIdx.x * kThreads + threadIdx.x;
  if (index >= total) return;
  const unsigned row = index / groups, i = index % groups * V;
  const unsigned p = row % s.n, bh = row / s.n, h = bh % s.heads, b = bh / s.heads;
  const TI* xr = x + b * s.in_stride[0] + h * s.in_stride[1] + p * s.in_stride[2] + i;
  TO* yr = y + b * s.out_stride[0] + h * s.out_stride[1] + p * s.out_stride[2] + i;
  const long long table_row = static_cast<long long>(p) * s.head_dim + i;
  float x1[V], x2[V], c1[V], c2[V], s1[V], s2[V], y1[V], y2[V];
  load_pack<TI, V>(xr, x1);
  load_pack<TI, V>(xr + half, x2);
  load_pack<TT, V>(cos + table_row, c1);
  load_pack<TT, V>(cos + table_row + half, c2);
  load_pack<TT, V>(sin + table_row, s1);
  load_pack<TT, V>(sin + table_row + half, s2);
#pragma unroll
  for (int e = 0; e < V; ++e) {
    if (!s.transpose) {
      y1[e] = __fsub_rn(__fmul_rn(x1[e], c1[e]), __fmul_rn(x2[e], s1[e]));
      y2[e] = __fadd_rn(__fmul_rn(x2[e], c2[e]), __fmul_rn(x1[e], s2[e]));
    } else {
      y1[e] = __fadd_rn(__fmul_rn(x1[e], c1[e]), __fmul_rn(x2[e], s2[e]));
      y2[e] = __fsub_rn(__fmul_rn(x2[e], c2[e]), __fmul_rn(x1[e], s1[e]));
    }
  }
  store_pack<TO, V>(yr, y1);
  store_pack<TO, V>(yr + half, y2);
}

template <typename T>
bool aligned(const void* p, int v) {
  const unsigned long long bytes = sizeof(T) * v > 16 ? 16 : sizeof(T) * v;
  return reinterpret_cast<unsigned long long>(p) % bytes == 0;
}

// Whether V = 8 serves this call: d_h/2, every row stride and every pointer on a vector boundary.
template <typename TI, typename TT, typename TO>
bool vectorisable(const RopeShape& s, const void* in, const void* cos, const void* sin, const void* out) {
  constexpr int V = 8;
  if ((s.head_dim / 2) % V != 0) return false;
  for (int d = 0; d < 3; ++d)
    if (s.in_stride[d] % V != 0 || s.out_stride[d] % V != 0) return false;
  return aligned<TI>(in, V) && aligned<TT>(cos, V) && aligned<TT>(sin, V) && aligned<TO>(out, V);
}

template <typename TI, typename TT, typename TO>
void launch(const RopeShape& s, const void* in, const void* cos, const void* sin, void* out, cudaStream_t stream) {
  const bool wide = vectorisable<TI, TT, TO>(s, in, cos, sin, out);
  const long long threads = static_cast<long long>(s.batch) * s.heads * s.n * (s.head_dim / 2) / (wide ? 8 : 1);
  const unsigned blocks = static_cast<unsigned>((threads + kThreads - 1) / kThreads);
  const auto* x = static_cast<const TI*>(in);
  const auto *c = static_cast<const TT*>(cos), *sn = static_cast<const TT*>(sin);
  auto* y = static_cast<TO*>(out);
  if (wide)
    rope_kernel<TI, TT, TO, 8><<<blocks, kThreads, 0, stream>>>(s, x, c, sn, y);
  else
    rope_kernel<TI, TT, TO, 1><<<blocks, kThreads, 0, stream>>>(s, x, c, sn, y);
}

// The element combination's kernel; false when it is not built.
bool dispatch(const RopeShape& s, const void* in, const void* cos, const void* sin, void* out, cudaStream_t st) {
  using E = RopeElement;
  using bf16 = __nv_bfloat16;
  if (s.in == s.table && s.table == s.out) {
    if (s.in == E::f32) launch<float, float, float>(s, in, cos, sin, out, st);
    else if (s.in == E::bf16) launch<bf16, bf16, bf16>(s, in, cos, sin, out, st);
    else launch<__half, __half, __half>(s, in, cos, sin, out, st);
    return true;
  }
  if (s.table != E::f32) return false;
  if (s.in == E::bf16 && s.out == E::bf16) launch<bf16, float, bf16>(s, in, cos, sin, out, st);
  else if (s.in == E::fp16 && s.out == E::fp16) launch<__half, float, __half>(s, in, cos, sin, out, st);
  else if (s.in == E::bf16 && s.out == E::f32) launch<bf16, float, float>(s, in, cos, sin, out, st);
  else if (s.in == E::fp16 && s.out == E::f32) launch<__half, float, float>(s, in, cos, sin, out, st);
  else if (s.in == E::f32 && s.out == E::bf16) launch<float, float, bf16>(s, in, cos, sin, out, st);
  else if (s.in == E::f32 && s.out == E::fp16) launch<float, float, __half>(s, in, cos, sin, out, st);
  else return false;
  return true;
}

}  // namespace

bool rope_elements_supported(RopeElement in, RopeElement table, RopeElement out) {
  using E = RopeElement;
  if (in == table && table == out) return true;
  return table == E::f32 && (in == E::f32 || out == E::f32 || in == out);
}

void rope(const RopeShape& shape, const void* in, const void* cos, const void* sin, void* out, void* stream) {
  const long long pairs = static_cast<long long>(shape.batch) * shape.heads * shape.n * (shape.head_dim / 2);
  if (shape.head_dim < 2 || shape.head_dim % 2 != 0 || shape.batch < 1 || shape.heads < 1 || shape.n < 1 ||
      pairs >= (1LL << 31) || !rope_elements_supported(shape.in, shape.table, shape.out))
    throw std::invalid_argument("rope: unsupported shape or element types (B " + std::to_string(shape.batch) +
                                ", H " + std::to_string(shape.heads) + ", N " + std::to_string(shape.n) +
                                ", d_h " + std::to_string(shape.head_dim) + ")");
  dispatch(shape, in, cos, sin, out, static_cast<cudaStream_t>(stream));
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) throw std::runtime_error(std::string("rope: ") + cudaGetErrorString(status));
}

}  // namespace mixlab::cuda::detail
