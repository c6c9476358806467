// The kernels of backward_rows.h.  A row of d values is d / 8 threads of 8 values each (one 16-byte
// load of bf16, two of float32): 8 threads per row at d 64, 16 at d 128, 256 threads per block.
// Row t of head bh's dQ accumulator, columns 64 b + c, lives at [bh, b, t, c] (window_backward.h).

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>

#include "attention/cuda/sm90/backward_rows.h"
#include "attention/cuda/sm90/launch.cuh"

namespace mixlab::cuda::sm90 {
namespace {

constexpr int kThreads = 256;

// This thread's place: row t of the block's rows, its 8 columns from `column`.
template <int D>
struct RowSlice {
  static constexpr int kThreadsPerRow = D / 8;
  static constexpr int kRowsPerBlock = kThreads / kThreadsPerRow;
  int t, column;
  __device__ RowSlice()
      : t(blockIdx.x * kRowsPerBlock + threadIdx.x / kThreadsPerRow), column(8 * (threadIdx.x % kThreadsPerRow)) {}
  // Offset of the slice's first value in the dQ accumulator of head bh.
  __device__ size_t accumulator_offset(int bh, int n_padded) const {
    return ((static_cast<size_t>(bh) * (D / 64) + column / 64) * n_padded + t) * 64 + column % 64;
  }
};

__device__ __forceinline__ float2 unpack(uint32_t pair) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&pair));
}

// D_t = Σ_d dO_td O_td (the slices' partial dot products summed over the row's threads, which are
// kThreadsPerRow consecutive lanes of one warp), and the accumulator's rows < n_padded zeroed.
// grid (⌈n_padded / kRowsPerBlock⌉, B·H).
template <int D>
__global__ void __launch_bounds__(kThreads) backward_prologue_kernel(int n, int n_padded,
                                                                     const __nv_bfloat16* __restrict__ dout,
                                                                     const __nv_bfloat16* __restrict__ o,
                                                                     float* __restrict__ delta,
                                                                     float* __restrict__ dq_accumulator) {
  const RowSlice<D> at;
  const int bh = blockIdx.y;
  float dot = 0.f;
  if (at.t < n) {
    const size_t offset = (static_cast<size_t>(bh) * n + at.t) * D + at.column;
    const uint4 a = *reinterpret_cast<const uint4*>(dout + offset), b = *reinterpret_cast<const uint4*>(o + offset);
    const uint32_t as[4] = {a.x, a.y, a.z, a.w}, bs[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 x = unpack(as[i]), y = unpack(bs[i]);
      dot += x.x * y.x + x.y * y.y;
    }
  }
#pragma unroll
  for (int offset = RowSlice<D>::kThreadsPerRow / 2; offset > 0; offset /= 2)
    dot += __shfl_xor_sync(0xffffffffu, dot, offset);  // every lane takes part: rows past n add zeros
  if (at.t < n && at.column == 0) delta[static_cast<size_t>(bh) * n + at.t] = dot;
  if (at.t < n_padded) {
    float4* row = reinterpret_cast<float4*>(dq_accumulator + at.accumulator_offset(bh, n_padded));
    row[0] = make_float4(0.f, 0.f, 0.f, 0.f);
    row[1] = make_float4(0.f, 0.f, 0.f, 0.f);
  }
}

// dq = bf16(scale · accumulator) for rows t < n.  grid (⌈n / kRowsPerBlock⌉, B·H).
template <int D>
__global__ void __launch_bounds__(kThreads) dq_from_accumulator_kernel(int n, int n_padded, float scale,
                                                                       const float* __restrict__ dq_accumulator,
                                                                       __nv_bfloat16* __restrict__ dq) {
  const RowSlice<D> at;
  if (at.t >= n) return;
  const int bh = blockIdx.y;
  const float4* row = reinterpret_cast<const float4*>(dq_accumulator + at.accumulator_offset(bh, n_padded));
  const float4 lo = row[0], hi = row[1];
  auto pack = [scale](float x, float y) {
    const __nv_bfloat162 pair = __floats2bfloat162_rn(scale * x, scale * y);
    return *reinterpret_cast<const uint32_t*>(&pair);
  };
  *reinterpret_cast<uint4*>(dq + (static_cast<size_t>(bh) * n + at.t) * D + at.column) =
      make_uint4(pack(lo.x, lo.y), pack(lo.z, lo.w), pack(hi.x, hi.y), pack(hi.z, hi.w));
}

void check_shape(const char* name, int batch_heads, int n, int n_padded, int head_dim,
                 std::initializer_list<const void*> pointers) {
  bool aligned = true;
  for (const void* p : pointers) aligned = aligned && reinterpret_cast<uintptr_t>(p) % 16 == 0;
  if (batch_heads < 1 || n < 1 || n_padded < (n + 63) / 64 * 64 || (head_dim != 64 && head_dim != 128) || !aligned)
    throw std::invalid_argument(std::string("attention/cuda/sm90/") + name +
                                ": needs B·H, N ≥ 1, n_padded ≥ N rounded up to 64, head dim 64 or 128 and "
                                "16-byte aligned tensors (got " + std::to_string(batch_heads) + ", " +
                                std::to_string(n) + ", " + std::to_string(n_padded) + ", " +
                                std::to_string(head_dim) + (aligned ? ")" : ", a misaligned tensor)"));
}

template <int D>
dim3 grid_of(int rows, int batch_heads) {
  return dim3((rows + RowSlice<D>::kRowsPerBlock - 1) / RowSlice<D>::kRowsPerBlock, batch_heads);
}

}  // namespace

void backward_prologue(int batch_heads, int n, int n_padded, int head_dim, const void* dout, const void* o,
                       float* delta, float* dq_accumulator, void* stream) {
  check_shape("backward_prologue", batch_heads, n, n_padded, head_dim, {dout, o, dq_accumulator});
  const auto* dout_ = static_cast<const __nv_bfloat16*>(dout);
  const auto* o_ = static_cast<const __nv_bfloat16*>(o);
  if (head_dim == 64)
    launch("backward_prologue", backward_prologue_kernel<64>, grid_of<64>(n_padded, batch_heads), kThreads, 0, stream,
           n, n_padded, dout_, o_, delta, dq_accumulator);
  else
    launch("backward_prologue", backward_prologue_kernel<128>, grid_of<128>(n_padded, batch_heads), kThreads, 0,
           stream, n, n_padded, dout_, o_, delta, dq_accumulator);
}

void dq_from_accumulator(int batch_heads, int n, int n_padded, int head_dim, float scale, const float* dq_accumulator,
                         void* dq, void* stream) {
  check_shape("dq_from_accumulator", batch_heads, n, n_padded, head_dim, {dq_accumulator, dq});
  auto* dq_ = static_cast<__nv_bfloat16*>(dq);
  if (head_dim == 64)
    launch("dq_from_accumulator", dq_from_accumulator_kernel<64>, grid_of<64>(n, batch_heads), kThreads, 0, stream, n,
           n_padded, scale, dq_accumulator, dq_);
  else
    launch("dq_from_accumulator", dq_from_accumulator_kernel<128>, grid_of<128>(n, batch_heads), kThreads, 0, stream,
           n, n_padded, scale, dq_accumulator, dq_);
}

}  // namespace mixlab::cuda::sm90
