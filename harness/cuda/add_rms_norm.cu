// The residual add of one sublayer fused with the RMSNorm of the next (harness/cuda/launch.h,
// AddNormShape): one kernel each way and a small reduction for dw, where LibTorch runs an add and
// rms_norm's kernels forward, and rms_norm's input and weight gradient kernels and the residual
// path's gradient sum backward.  Per row of `cols` elements:
//
//   forward   h = x + r,   s = rsqrt(mean(h²) + eps),   y = (h·s)·w          (s saved: [rows])
//   backward  g = dy·w,    dh = dh_out + s·g − h·s³·mean(g·h),   dx = dr = dh
//             dw = Σ_rows dy·h·s
//
// dh: y_j = w_j·h_j·s with ∂s/∂h_k = −s³·h_k / cols, so Σ_j dy_j ∂y_j/∂h_k = s·g_k − h_k·s³·mean(g·h);
// dh_out, the gradient that reaches h along the residual path, adds to it.
//
// One warp per row, rows strided over a grid that fills the device once; lane l holds vectors
// l, l + 32, ... (P of them, P ≤ 8) of kAddNormVector columns in registers.  Arithmetic and the
// warp sums in float32; h is rounded to its element before the statistics (the composed form
// normalises the stored h).  dw: each warp sums dy·h·s over its rows in registers, a block adds its
// warps in a fixed order into one row of `partial`, and add_rms_norm_dw_kernel adds those rows in
// a fixed order: the same bits on every run.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "core/cuda/dependent_launch.cuh"
#include "core/cuda/elements.cuh"
#include "harness/cuda/launch.h"

namespace mixlab::cuda::detail {
namespace {

constexpr int kV = kAddNormVector;
constexpr int kWarps = 8;  // rows in flight per block
constexpr int kThreads = 32 * kWarps;
constexpr int kReduceColumns = 32, kReduceSlices = 8;  // add_rms_norm_dw_kernel's block

// ------------------------------------------------------------------ one row's slice in registers
// Lane `lane` holds vectors lane + 32·p, p < P, of the row; a vector at or past `vectors`
// (cols / kV) is absent: it loads as zeros and is not stored.

template <typename T, int P>
__device__ __forceinline__ void load_row_as(const T* row, int lane, int vectors, float (&out)[P][kV]) {
#pragma unroll
  for (int p = 0; p < P; ++p) {
    if (lane + 32 * p < vectors) {
      load_pack<T, kV>(row + (lane + 32 * p) * kV, out[p]);
    } else {
#pragma unroll
      for (int e = 0; e < kV; ++e) out[p][e] = 0.f;
    }
  }
}

template <typename T, int P>
__device__ __forceinline__ void store_row_as(T* row, int lane, int vectors, const float (&in)[P][kV]) {
#pragma unroll
  for (int p = 0; p < P; ++p)
    if (lane + 32 * p < vectors) store_pack<T, kV>(row + (lane + 32 * p) * kV, in[p]);
}

// base + offset elements of `element`: the row's slice as float.
template <int P>
__device__ __forceinline__ void load_row(NormElement element, const void* base, long long offset, int lane,
                                         int vectors, float (&out)[P][kV]) {
  switch (element) {
    case NormElement::f32: load_row_as<float, P>(static_cast<const float*>(base) + offset, lane, vectors, out); break;
    case NormElement::bf16:
      load_row_as<__nv_bfloat16, P>(static_cast<const __nv_bfloat16*>(base) + offset, lane, vectors, out);
      break;
    case NormElement::fp16:
      load_row_as<__half, P>(static_cast<const __half*>(base) + offset, lane, vectors, out);
      break;
  }
}

template <int P>
__device__ __forceinline__ void store_row(NormElement element, void* base, long long offset, int lane, int vectors,
                                          const float (&in)[P][kV]) {
  switch (element) {
    case NormElement::f32: store_row_as<float, P>(static_cast<float*>(base) + offset, lane, vectors, in); break;
    case NormElement::bf16:
      store_row_as<__nv_bfloat16, P>(static_cast<__nv_bfloat16*>(base) + offset, lane, vectors, in);
      break;
    case NormElement::fp16: store_row_as<__half, P>(static_cast<__half*>(base) + offset, lane, vectors, in); break;
  }
}

// v -> v rounded to T (round to nearest even), as float.
template <typename T, int P>
__device__ __forceinline__ void round_row_as(float (&v)[P][kV]) {
#pragma unroll
  for (int p = 0; p < P; ++p)
#pragma unroll
    for (int e = 0; e < kV; ++e) {
      T stored;
      store_f(&stored, v[p][e]);
      v[p][e] = to_f(stored);
    }
}

template <int P>
__device__ __forceinline__ void round_row(NormElement element, float (&v)[P][kV]) {
  if (element == NormElement::bf16) round_row_as<__nv_bfloat16, P>(v);
  else if (element == NormElement::fp16) round_row_as<__half, P>(v);
}

// One element of `element` at base[index], as float, and back.
__device__ __forceinline__ float load_one(NormElement element, const void* base, long long index) {
  switch (element) {
    case NormElement::bf16: return to_f(static_cast<const __nv_bfloat16*>(base)[index]);
    case NormElement::fp16: return to_f(static_cast<const __half*>(base)[index]);
    default: return static_cast<const float*>(base)[index];
  }
}

__device__ __forceinline__ void store_one(NormElement element, void* base, long long index, float value) {
  switch (element) {
    case NormElement::bf16: store_f(static_cast<__nv_bfloat16*>(base) + index, value); break;
    case NormElement::fp16: store_f(static_cast<__half*>(base) + index, value); break;
    default: static_cast<float*>(base)[index] = value;
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// ------------------------------------------------------------------ the kernels

// x, r: [rows, cols]; w: [cols] -> h, y: [rows, cols]; s: [rows].  h = x + r, s = rsqrt(mean(h²) + eps),
// y = (h·s)·w.  r null: h = x (the RMSNorm alone), and h null: not written.
template <int P>
__global__ void __launch_bounds__(kThreads)
    add_rms_norm_forward_kernel(AddNormShape s, const void* __restrict__ x, const void* __restrict__ r,
                                const void* __restrict__ w, void* __restrict__ h, void* __restrict__ y,
                                float* __restrict__ inv_rms) {
  const int lane = threadIdx.x % 32, vectors = static_cast<int>(s.cols / kV);
  const float inv_cols = 1.f / static_cast<float>(s.cols);
  float wv[P][kV];
  load_row<P>(s.w, w, 0, lane, vectors, wv);  // a weight: read before the wait for x's kernel
  wait_for_prerequisites();                    // (core/cuda/dependent_launch.cuh)
  let_dependents_launch();
  for (long long row = static_cast<long long>(blockIdx.x) * kWarps + threadIdx.x / 32; row < s.rows;
       row += static_cast<long long>(gridDim.x) * kWarps) {
    const long long at = row * s.cols;
    float hv[P][kV];
    load_row<P>(s.h, x, at, lane, vectors, hv);
    if (r != nullptr) {
      float rv[P][kV];
      load_row<P>(s.r, r, at, lane, vectors, rv);
#pragma unroll
      for (int p = 0; p < P; ++p)
#pragma unroll
        for (int e = 0; e < kV; ++e) hv[p][e] += rv[p][e];
      round_row<P>(s.h, hv);
    }
    float squares = 0.f;
#pragma unroll
    for (int p = 0; p < P; ++p)
#pragma unroll
      for (int e = 0; e < kV; ++e) squares += hv[p][e] * hv[p][e];
    const float inv = rsqrtf(warp_sum(squares) * inv_cols + s.eps);
    if (h != nullptr) store_row<P>(s.h, h, at, lane, vectors, hv);
    if (lane == 0) inv_rms[row] = inv;
#pragma unroll
    for (int p = 0; p < P; ++p)
#pragma unroll
      for (int e = 0; e < kV; ++e) hv[p][e] = hv[p][e] * inv * wv[p][e];
    store_row<P>(s.y, y, at, lane, vectors, hv);
  }
}

// partial[blockIdx.x, :] = Σ over the block's warps, in warp order, of each warp's acc (its columns).
template <int P>
__device__ __forceinline__ void write_block_partial(const AddNormShape& s, const float (&acc)[P][kV], float* shared,
                                                    float* partial) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int k = 0; k < kWarps; ++k) {
    if (warp == k) {
#pragma unroll
      for (int p = 0; p < P; ++p)
#pragma unroll
        for (int e = 0; e < kV; ++e) {
          const int c = (lane + 32 * p) * kV + e;
          shared[c] = (k == 0 ? 0.f : shared[c]) + acc[p][e];
        }
    }
    __syncthreads();
  }
  for (int c = threadIdx.x; c < s.cols; c += kThreads) partial[blockIdx.x * s.cols + c] = shared[c];
}

// h, dy, dh_out (null: zero): [rows, cols]; s: [rows]; w: [cols] -> dh, dr (null: not written):
// [rows, cols]; partial (null: dw not asked): [gridDim.x, cols], this block's Σ dy·h·s.
template <int P>
__global__ void __launch_bounds__(kThreads)
    add_rms_norm_backward_kernel(AddNormShape s, const void* __restrict__ h, const float* __restrict__ inv_rms,
                                 const void* __restrict__ w, const void* __restrict__ dy,
                                 const void* __restrict__ dh_out, void* __restrict__ dh, void* __restrict__ dr,
                                 float* __restrict__ partial) {
  __shared__ float w_shared[32 * P * kV];  // w as float32, zero past cols; then the block's dw sums
  for (int c = threadIdx.x; c < 32 * P * kV; c += kThreads) w_shared[c] = c < s.cols ? load_one(s.w, w, c) : 0.f;
  __syncthreads();
  const int lane = threadIdx.x % 32, vectors = static_cast<int>(s.cols / kV);
  const float inv_cols = 1.f / static_cast<float>(s.cols);
  float acc[P][kV] = {};  // Σ dy·h·s over this warp's rows
  for (long long row = static_cast<long long>(blockIdx.x) * kWarps + threadIdx.x / 32; row < s.rows;
       row += static_cast<long long>(gridDim.x) * kWarps) {
    const long long at = row * s.cols;
    const float inv = inv_rms[row];
    float hv[P][kV], gv[P][kV];
    load_row<P>(s.h, h, at, lane, vectors, hv);
    load_row<P>(s.y, dy, at, lane, vectors, gv);
    float dot = 0.f;
#pragma unroll
    for (int p = 0; p < P; ++p)
#pragma unroll
      for (int e = 0; e < kV; ++e) {
        acc[p][e] += gv[p][e] * hv[p][e] * inv;
        gv[p][e] *= w_shared[(lane + 32 * p) * kV + e];  // g = dy·w
        dot += gv[p][e] * hv[p][e];
      }
    const float k = inv * inv * inv * warp_sum(dot) * inv_cols;  // s³·mean(g·h)
#pragma unroll
    for (int p = 0; p < P; ++p)
#pragma unroll
      for (int e = 0; e < kV; ++e) gv[p][e] = inv * gv[p][e] - hv[p][e] * k;
    if (dh_out != nullptr) {
      load_row<P>(s.h, dh_out, at, lane, vectors, hv);  // h is no longer needed
#pragma unroll
      for (int p = 0; p < P; ++p)
#pragma unroll
        for (int e = 0; e < kV; ++e) gv[p][e] += hv[p][e];
    }
    store_row<P>(s.h, dh, at, lane, vectors, gv);
    if (dr != nullptr) store_row<P>(s.r, dr, at, lane, vectors, gv);
  }
  if (partial == nullptr) return;
  __syncthreads();  // every warp is done reading w_shared
  write_block_partial<P>(s, acc, w_shared, partial);
}

// partial: [blocks, cols] -> dw: [cols] in w's element, each column summed over the blocks in a
// fixed order (kReduceSlices strided partial sums, then those in order).
__global__ void __launch_bounds__(kReduceColumns * kReduceSlices)
    add_rms_norm_dw_kernel(AddNormShape s, const float* __restrict__ partial, int blocks, void* __restrict__ dw) {
  __shared__ float sums[kReduceSlices][kReduceColumns];
  const long long c = static_cast<long long>(blockIdx.x) * kReduceColumns + threadIdx.x;
  float sum = 0.f;
  if (c < s.cols)
    for (int b = threadIdx.y; b < blocks; b += kReduceSlices) sum += partial[b * s.cols + c];
  sums[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y != 0 || c >= s.cols) return;
  for (int k = 1; k < kReduceSlices; ++k) sum += sums[k][threadIdx.x];
  store_one(s.w, dw, c, sum);
}

// ------------------------------------------------------------------ launches

// The vectors each lane holds: the smallest instantiated P with 32·P·kV ≥ cols.
int vectors_per_lane(const AddNormShape& s) {
  const long long needed = (s.cols / kV + 31) / 32;
  for (int p : {1, 2, 3, 4, 6, 8})
    if (p >= needed) return p;
  return 0;
}

// f(std::integral_constant<int, P>) for the runtime P.
template <typename F>
void with_vectors_per_lane(int p, F&& f) {
  switch (p) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 6: f(std::integral_constant<int, 6>{}); break;
    case 8: f(std::integral_constant<int, 8>{}); break;
    default: throw std::invalid_argument("add_rms_norm: no kernel for " + std::to_string(p) + " vectors per lane");
  }
}

void check_cuda(cudaError_t error, const char* what) {
  if (error != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(error));
}

// Blocks that fill the current device once (resident blocks per SM x SMs), at most one warp a row.
template <typename Kernel>
long long grid_for(Kernel kernel, long long rows) {
  int device = 0, sms = 1, per_sm = 1;
  check_cuda(cudaGetDevice(&device), "add_rms_norm: cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "add_rms_norm: SM count");
  check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, 0), "add_rms_norm: occupancy");
  const long long wanted = (rows + kWarps - 1) / kWarps;
  return std::max(1LL, std::min(wanted, static_cast<long long>(sms) * std::max(per_sm, 1)));
}

void check_shape(const AddNormShape& s, const char* what) {
  if (s.rows < 1 || s.cols < kV || s.cols > kAddNormMaxCols || s.cols % kV != 0)
    throw std::invalid_argument(std::string(what) + ": unsupported shape (rows " + std::to_string(s.rows) +
                                ", cols " + std::to_string(s.cols) + "; cols must be a multiple of " +
                                std::to_string(kV) + " up to " + std::to_string(kAddNormMaxCols) + ")");
}

void check_aligned(std::initializer_list<const void*> pointers, const char* what) {
  for (const void* p : pointers)
    if (reinterpret_cast<unsigned long long>(p) % 16 != 0)
      throw std::invalid_argument(std::string(what) + ": every row operand must be 16-byte aligned");
}

}  // namespace

void add_rms_norm_forward(const AddNormShape& s, const void* x, const void* r, const void* w, void* h, void* y,
                          float* inv_rms, void* stream) {
  check_shape(s, "add_rms_norm_forward");
  check_aligned({x, r, w, h, y}, "add_rms_norm_forward");
  const auto st = static_cast<cudaStream_t>(stream);
  with_vectors_per_lane(vectors_per_lane(s), [&](auto p) {
    constexpr int P = decltype(p)::value;
    const auto grid = static_cast<unsigned>(grid_for(add_rms_norm_forward_kernel<P>, s.rows));
    launch_dependent("add_rms_norm_forward", add_rms_norm_forward_kernel<P>, dim3(grid), dim3(kThreads), 0, st, s, x,
                     r, w, h, y, inv_rms);
  });
}

long long add_rms_norm_backward_blocks(const AddNormShape& s) {
  check_shape(s, "add_rms_norm_backward_blocks");
  long long blocks = 0;
  with_vectors_per_lane(vectors_per_lane(s), [&](auto p) {
    blocks = grid_for(add_rms_norm_backward_kernel<decltype(p)::value>, s.rows);
  });
  return blocks;
}

void add_rms_norm_backward(const AddNormShape& s, const void* h, const float* inv_rms, const void* w, const void* dy,
                           const void* dh_out, void* dh, void* dr, float* partial, void* dw, void* stream) {
  check_shape(s, "add_rms_norm_backward");
  check_aligned({h, dy, dh_out, dh, dr}, "add_rms_norm_backward");
  if (dw != nullptr && partial == nullptr)
    throw std::invalid_argument("add_rms_norm_backward: dw asked without its partial-sum scratch");
  const auto st = static_cast<cudaStream_t>(stream);
  const long long blocks = add_rms_norm_backward_blocks(s);
  with_vectors_per_lane(vectors_per_lane(s), [&](auto p) {
    add_rms_norm_backward_kernel<decltype(p)::value><<<static_cast<unsigned>(blocks), kThreads, 0, st>>>(
        s, h, inv_rms, w, dy, dh_out, dh, dr, dw != nullptr ? partial : nullptr);
  });
  check_cuda(cudaGetLastError(), "add_rms_norm_backward");
  if (dw == nullptr) return;
  const dim3 block(kReduceColumns, kReduceSlices);
  const auto grid = static_cast<unsigned>((s.cols + kReduceColumns - 1) / kReduceColumns);
  add_rms_norm_dw_kernel<<<grid, block, 0, st>>>(s, partial, static_cast<int>(blocks), dw);
  check_cuda(cudaGetLastError(), "add_rms_norm_backward (dw)");
}

}  // namespace mixlab::cuda::detail
