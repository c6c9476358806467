// SwiGLU's gate (mixers/cuda/launch.h, SwigluShape), one kernel each way where LibTorch runs SiLU
// and a product forward (and SiLU's backward, two products and a sum backward):
//
//   forward   out = SiLU(a)·b = a·σ(a)·b,   σ(a) = 1 / (1 + e^(−a))
//   backward  da = g·b·σ(a)·(1 + a·(1 − σ(a)))      (d SiLU/da = σ(a) + a·σ(a)·(1 − σ(a)))
//             db = g·SiLU(a)
//
// One thread per V consecutive columns of one row: V = 16 bytes of the element type (8 bf16 / fp16,
// 4 float32) where the columns, the row strides and the pointers allow it, else 1.  Arithmetic in
// float32; the backward recomputes σ(a) from a rather than saving SiLU(a).

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <initializer_list>
#include <stdexcept>
#include <string>

#include "core/cuda/dependent_launch.cuh"
#include "core/cuda/elements.cuh"
#include "mixers/cuda/launch.h"

namespace mixlab::cuda::detail {
namespace {

constexpr int kThreads = 256;

// Thread t: columns [c, c + V) of row r; r = t div (cols/V), c = V·(t mod (cols/V)).
// a, b: [rows, cols] strided rows -> out: [rows, cols] contiguous, out = a·σ(a)·b.
template <typename T, int V>
__global__ void __launch_bounds__(kThreads)
    swiglu_forward_kernel(SwigluShape s, const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out) {
  wait_for_prerequisites();  // a and b are the previous kernel's (core/cuda/dependent_launch.cuh)
  let_dependents_launch();
  const unsigned groups = static_cast<unsigned>(s.cols / V);
  const unsigned index = blockIdx.x * kThreads + threadIdx.x;
  if (index >= static_cast<unsigned>(s.rows) * groups) return;
  const unsigned r = index / groups, c = index % groups * V;
  float av[V], bv[V], o[V];
  load_pack<T, V>(a + r * s.a_row_stride + c, av);
  load_pack<T, V>(b + r * s.b_row_stride + c, bv);
#pragma unroll
  for (int e = 0; e < V; ++e) o[e] = av[e] * sigmoid(av[e]) * bv[e];
  store_pack<T, V>(out + r * s.cols + c, o);
}

// a, b: [rows, cols] strided rows; g: [rows, cols] contiguous -> da, db: [rows, cols] contiguous.
template <typename T, int V>
__global__ void __launch_bounds__(kThreads)
    swiglu_backward_kernel(SwigluShape s, const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ g,
                           T* __restrict__ da, T* __restrict__ db) {
  const unsigned groups = static_cast<unsigned>(s.cols / V);
  const unsigned index = blockIdx.x * kThreads + threadIdx.x;
  if (index >= static_cast<unsigned>(s.rows) * groups) return;
  const unsigned r = index / groups, c = index % groups * V;
  float av[V], bv[V], gv[V], dav[V], dbv[V];
  load_pack<T, V>(a + r * s.a_row_stride + c, av);
  load_pack<T, V>(b + r * s.b_row_stride + c, bv);
  load_pack<T, V>(g + r * s.cols + c, gv);
#pragma unroll
  for (int e = 0; e < V; ++e) {
    const float sig = sigmoid(av[e]);
    dav[e] = gv[e] * bv[e] * sig * (1.f + av[e] * (1.f - sig));
    dbv[e] = gv[e] * av[e] * sig;
  }
  store_pack<T, V>(da + r * s.cols + c, dav);
  store_pack<T, V>(db + r * s.cols + c, dbv);
}

// The widest V (16 bytes) where every pointer is 16-byte aligned and the columns and row strides
// are multiples of it; else 1.
template <typename T>
int vector_width(const SwigluShape& s, std::initializer_list<const void*> pointers) {
  constexpr int V = 16 / sizeof(T);
  if (s.cols % V != 0 || s.a_row_stride % V != 0 || s.b_row_stride % V != 0) return 1;
  for (const void* p : pointers)
    if (reinterpret_cast<unsigned long long>(p) % 16 != 0) return 1;
  return V;
}

unsigned blocks_for(const SwigluShape& s, int v) {
  return static_cast<unsigned>((s.rows * (s.cols / v) + kThreads - 1) / kThreads);
}

template <typename T>
void forward_as(const SwigluShape& s, const void* a, const void* b, void* out, cudaStream_t stream) {
  constexpr int V = 16 / sizeof(T);
  const auto *ta = static_cast<const T*>(a), *tb = static_cast<const T*>(b);
  auto* to = static_cast<T*>(out);
  if (vector_width<T>(s, {a, b, out}) == V)
    launch_dependent("swiglu_forward", swiglu_forward_kernel<T, V>, dim3(blocks_for(s, V)), dim3(kThreads), 0, stream,
                     s, ta, tb, to);
  else
    launch_dependent("swiglu_forward", swiglu_forward_kernel<T, 1>, dim3(blocks_for(s, 1)), dim3(kThreads), 0, stream,
                     s, ta, tb, to);
}

template <typename T>
void backward_as(const SwigluShape& s, const void* a, const void* b, const void* g, void* da, void* db,
                 cudaStream_t stream) {
  constexpr int V = 16 / sizeof(T);
  const auto *ta = static_cast<const T*>(a), *tb = static_cast<const T*>(b), *tg = static_cast<const T*>(g);
  auto *tda = static_cast<T*>(da), *tdb = static_cast<T*>(db);
  if (vector_width<T>(s, {a, b, g, da, db}) == V)
    swiglu_backward_kernel<T, V><<<blocks_for(s, V), kThreads, 0, stream>>>(s, ta, tb, tg, tda, tdb);
  else
    swiglu_backward_kernel<T, 1><<<blocks_for(s, 1), kThreads, 0, stream>>>(s, ta, tb, tg, tda, tdb);
}

void check_shape(const SwigluShape& s, const char* what) {
  if (s.rows < 1 || s.cols < 1 || s.rows * s.cols >= (1LL << 31) || s.a_row_stride < 0 || s.b_row_stride < 0)
    throw std::invalid_argument(std::string(what) + ": unsupported shape (rows " + std::to_string(s.rows) +
                                ", cols " + std::to_string(s.cols) + ")");
}

void check_launch(const char* what) {
  const cudaError_t error = cudaGetLastError();
  if (error != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(error));
}

}  // namespace

void swiglu_forward(const SwigluShape& s, const void* a, const void* b, void* out, void* stream) {
  check_shape(s, "swiglu_forward");
  const auto st = static_cast<cudaStream_t>(stream);
  switch (s.element) {
    case ScanElement::f32: forward_as<float>(s, a, b, out, st); break;
    case ScanElement::bf16: forward_as<__nv_bfloat16>(s, a, b, out, st); break;
    case ScanElement::fp16: forward_as<__half>(s, a, b, out, st); break;
  }
  check_launch("swiglu_forward");
}

void swiglu_backward(const SwigluShape& s, const void* a, const void* b, const void* g, void* da, void* db,
                     void* stream) {
  check_shape(s, "swiglu_backward");
  const auto st = static_cast<cudaStream_t>(stream);
  switch (s.element) {
    case ScanElement::f32: backward_as<float>(s, a, b, g, da, db, st); break;
    case ScanElement::bf16: backward_as<__nv_bfloat16>(s, a, b, g, da, db, st); break;
    case ScanElement::fp16: backward_as<__half>(s, a, b, g, da, db, st); break;
  }
  check_launch("swiglu_backward");
}

}  // namespace mixlab::cuda::detail
