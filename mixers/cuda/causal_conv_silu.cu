// The causal depthwise convolution of Mamba fused with its SiLU (causal_conv_silu_launch.h for the
// equations and operands): one kernel forward where LibTorch copies the strided input, pads it, runs
// its depthwise convolution and SiLU; one kernel and a small reduction backward.
//
// Tiling.  A block owns kTileT time steps × kTileE channels of one sequence at a time.  x is read
// into shared memory along the channels (x: [B, N, E], channel stride 1: coalesced), with the
// K − 1 earlier steps of the halo, and u is written along time (u: [B, E, N]: coalesced): a tiled
// transpose.  Shared rows are kTileE + 1 floats long, so that a warp reading down a column (32 time
// steps of one channel) hits 32 banks.
//
// Backward.  The block reads x for steps [t0 − (K−1), t0 + kTileT + K−1) and g for steps
// [t0, t0 + kTileT + K−1), recomputes c and dc in place of g, writes dx for its kTileT steps
// (along the channels: dx is [B, N, E]) and adds dc·x and dc of its own steps to per-thread
// accumulators of dw and dbias.  Each block walks a fixed subset of the batch (b = z, z + Z, ...,
// with Z = gridDim.z chosen to fill the device once), writes its sums to one row of `partial`, and
// conv_silu_dw_kernel adds the rows in a fixed order.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "core/cuda/elements.cuh"
#include "mixers/cuda/causal_conv_silu_launch.h"

namespace mixlab::cuda::detail {
namespace {

constexpr int kTileT = 64, kTileE = 64, kThreads = 256;
constexpr int kRow = kTileE + 1;                 // shared row length in floats (bank offset 1 per row)
constexpr int kMaxHalo = kConvSiluMaxKernel - 1;
constexpr int kLanesT = kThreads / kTileT;       // channels in flight when threads run along time
constexpr int kLanesE = kThreads / kTileE;       // time steps in flight when threads run along channels
constexpr int kTaps = kConvSiluMaxKernel + 1;    // dw's taps and dbias
constexpr int kAccumulators = (kTileE * kTaps + kThreads - 1) / kThreads;
constexpr int kReduceColumns = 32, kReduceSlices = 8;  // conv_silu_dw_kernel's block
constexpr int kMaxGridZ = 65535;

// ------------------------------------------------------------------ shared tiles

// ws[i·kTileE + col] = w[e0 + col, i], bs[col] = bias[e0 + col] as float (0 past E or without bias).
template <typename P>
__device__ __forceinline__ void load_params(const ConvSiluShape& s, const P* w, const P* bias, int e0, float* ws,
                                            float* bs) {
  for (int idx = threadIdx.x; idx < s.kernel * kTileE; idx += kThreads) {
    const int i = idx / kTileE, e = e0 + idx % kTileE;
    ws[idx] = e < s.channels ? to_f(w[e * s.kernel + i]) : 0.f;
  }
  for (int col = threadIdx.x; col < kTileE; col += kThreads)
    bs[col] = bias != nullptr && e0 + col < s.channels ? to_f(bias[e0 + col]) : 0.f;
}

// xs[r·kRow + col] = x[b, first + r, e0 + col] for r < rows, 0 outside [0, N) × [0, E).  Threads
// run along the channels (coalesced).  xb = x + b·x_batch_stride.
template <typename T>
__device__ __forceinline__ void load_x_tile(const ConvSiluShape& s, const T* xb, int first, int rows, int e0,
                                            float* xs) {
  const int col = threadIdx.x % kTileE, e = e0 + col;
  for (int r = threadIdx.x / kTileE; r < rows; r += kLanesE) {
    const int t = first + r;
    xs[r * kRow + col] = t >= 0 && t < s.time && e < s.channels ? to_f(xb[t * s.x_time_stride + e]) : 0.f;
  }
}

// gs[j·kRow + col] = g[b, e0 + col, t0 + j] for j < rows, 0 outside [0, N) × [0, E).  Threads run
// along time (coalesced).  gb = g + b·E·N.
template <typename T>
__device__ __forceinline__ void load_g_tile(const ConvSiluShape& s, const T* gb, int t0, int rows, int e0, float* gs) {
  const int j0 = threadIdx.x % kTileT;
  for (int col = threadIdx.x / kTileT; col < kTileE; col += kLanesT) {
    const int e = e0 + col;
    for (int j = j0; j < rows; j += kTileT) {
      const int t = t0 + j;
      gs[j * kRow + col] = t < s.time && e < s.channels ? to_f(gb[static_cast<long long>(e) * s.time + t]) : 0.f;
    }
  }
}

// c at tile row j (time t0 + j) of column col, from xs rows j .. j + K − 1 (times t0 + j − (K−1) ..).
__device__ __forceinline__ float conv_at(int kernel, const float* ws, const float* bs, const float* xs, int j,
                                         int col) {
  float c = bs[col];
  for (int i = 0; i < kernel; ++i) c += ws[i * kTileE + col] * xs[(j + i) * kRow + col];
  return c;
}

// ------------------------------------------------------------------ forward

// x: [B, N, E] strided -> u: [B, E, N] contiguous.  Grid (E / kTileE, N / kTileT, ≤ B), rounded up.
template <typename T, typename P>
__global__ void __launch_bounds__(kThreads)
    conv_silu_forward_kernel(ConvSiluShape s, const T* __restrict__ x, const P* __restrict__ w,
                             const P* __restrict__ bias, T* __restrict__ u) {
  __shared__ float xs[(kTileT + kMaxHalo) * kRow];
  __shared__ float ws[kConvSiluMaxKernel * kTileE], bs[kTileE];
  const int e0 = blockIdx.x * kTileE, t0 = blockIdx.y * kTileT, halo = s.kernel - 1;
  load_params(s, w, bias, e0, ws, bs);
  const int j = threadIdx.x % kTileT, t = t0 + j;  // threads along time for the stores
  for (int b = blockIdx.z; b < s.batch; b += gridDim.z) {
    __syncthreads();  // the previous sequence's reads of xs are done
    load_x_tile(s, x + b * s.x_batch_stride, t0 - halo, kTileT + halo, e0, xs);
    __syncthreads();
    if (t >= s.time) continue;
    T* out = u + (static_cast<long long>(b) * s.channels + e0) * s.time + t;
    for (int col = threadIdx.x / kTileT; col < kTileE && e0 + col < s.channels; col += kLanesT) {
      const float c = conv_at(s.kernel, ws, bs, xs, j, col);
      store_f(out + static_cast<long long>(col) * s.time, c * sigmoid(c));
    }
  }
}

// ------------------------------------------------------------------ backward

// gs rows [0, rows) hold g; replaced by dc = g·σ(c)·(1 + c·(1 − σ(c))).  Threads along time.
__device__ __forceinline__ void silu_grad_in_place(int kernel, int rows, const float* ws, const float* bs,
                                                   const float* xs, float* gs) {
  const int j0 = threadIdx.x % kTileT;
  for (int col = threadIdx.x / kTileT; col < kTileE; col += kLanesT)
    for (int j = j0; j < rows; j += kTileT) {
      const float c = conv_at(kernel, ws, bs, xs, j, col), sig = sigmoid(c);
      gs[j * kRow + col] *= sig * (1.f + c * (1.f - sig));
    }
}

// dx[b, t0 + j, e0 + col] = Σ_i w[e, i]·dc[t0 + j + (K−1−i)] for j < kTileT.  Threads along the
// channels (coalesced).  dxb = dx + b·N·E.
template <typename T>
__device__ __forceinline__ void store_dx(const ConvSiluShape& s, T* dxb, int t0, int e0, const float* ws,
                                         const float* dcs) {
  const int col = threadIdx.x % kTileE, e = e0 + col;
  if (e >= s.channels) return;
  for (int j = threadIdx.x / kTileE; j < kTileT && t0 + j < s.time; j += kLanesE) {
    float sum = 0.f;
    for (int i = 0; i < s.kernel; ++i) sum += ws[i * kTileE + col] * dcs[(j + s.kernel - 1 - i) * kRow + col];
    store_f(dxb + static_cast<long long>(t0 + j) * s.channels + e, sum);
  }
}

// Accumulator a of this thread is pair p = threadIdx.x + kThreads·a: column p % kTileE, tap
// p / kTileE (taps 0 .. K−1: dw[e, tap] += Σ_j dc[j]·x[j − (K−1−tap)], i.e. xs row j + tap; tap K:
// dbias[e] += Σ_j dc[j]), over the block's own rows j < kTileT (dc is 0 past N).
__device__ __forceinline__ void accumulate_dw(int kernel, const float* xs, const float* dcs,
                                              float (&acc)[kAccumulators]) {
#pragma unroll
  for (int a = 0; a < kAccumulators; ++a) {
    const int p = threadIdx.x + kThreads * a, col = p % kTileE, tap = p / kTileE;
    if (tap > kernel) continue;
    float sum = 0.f;
    if (tap == kernel) {
      for (int j = 0; j < kTileT; ++j) sum += dcs[j * kRow + col];
    } else {
      for (int j = 0; j < kTileT; ++j) sum += dcs[j * kRow + col] * xs[(j + tap) * kRow + col];
    }
    acc[a] += sum;
  }
}

// partial[row, tap, e0 + col] = acc (row = z·gridDim.y + y; partial: [rows, K + 1, E]).
__device__ __forceinline__ void store_partial(const ConvSiluShape& s, int e0, const float (&acc)[kAccumulators],
                                              float* partial) {
  const long long row = static_cast<long long>(blockIdx.z) * gridDim.y + blockIdx.y;
  float* out = partial + row * (s.kernel + 1) * s.channels;
#pragma unroll
  for (int a = 0; a < kAccumulators; ++a) {
    const int p = threadIdx.x + kThreads * a, col = p % kTileE, tap = p / kTileE;
    if (tap <= s.kernel && e0 + col < s.channels) out[tap * s.channels + e0 + col] = acc[a];
  }
}

// x: [B, N, E] strided, g: [B, E, N] -> dx: [B, N, E]; partial: this block's dw and dbias sums.
// Grid (E / kTileE, N / kTileT, Z), rounded up; block z walks sequences z, z + Z, ...
template <typename T, typename P>
__global__ void __launch_bounds__(kThreads)
    conv_silu_backward_kernel(ConvSiluShape s, const T* __restrict__ x, const P* __restrict__ w,
                              const P* __restrict__ bias, const T* __restrict__ g, T* __restrict__ dx,
                              float* __restrict__ partial) {
  __shared__ float xs[(kTileT + 2 * kMaxHalo) * kRow];  // times t0 − (K−1) ..
  __shared__ float dcs[(kTileT + kMaxHalo) * kRow];     // times t0 ..: g, then dc
  __shared__ float ws[kConvSiluMaxKernel * kTileE], bs[kTileE];
  const int e0 = blockIdx.x * kTileE, t0 = blockIdx.y * kTileT, halo = s.kernel - 1;
  load_params(s, w, bias, e0, ws, bs);
  float acc[kAccumulators] = {};
  for (int b = blockIdx.z; b < s.batch; b += gridDim.z) {
    __syncthreads();  // the previous sequence's reads of xs and dcs are done
    load_x_tile(s, x + b * s.x_batch_stride, t0 - halo, kTileT + 2 * halo, e0, xs);
    load_g_tile(s, g + static_cast<long long>(b) * s.channels * s.time, t0, kTileT + halo, e0, dcs);
    __syncthreads();
    silu_grad_in_place(s.kernel, kTileT + halo, ws, bs, xs, dcs);
    __syncthreads();
    store_dx(s, dx + static_cast<long long>(b) * s.time * s.channels, t0, e0, ws, dcs);
    accumulate_dw(s.kernel, xs, dcs, acc);
  }
  store_partial(s, e0, acc, partial);
}

// partial: [rows, K + 1, E] -> dweight [E, K] (tap < K), dbias [E] (tap K), each column summed
// over the rows in a fixed order (kReduceSlices strided sums, then those in order).
template <typename P>
__global__ void __launch_bounds__(kReduceColumns * kReduceSlices)
    conv_silu_dw_kernel(ConvSiluShape s, const float* __restrict__ partial, long long rows, P* __restrict__ dweight,
                        P* __restrict__ dbias) {
  __shared__ float sums[kReduceSlices][kReduceColumns];
  const long long columns = static_cast<long long>(s.kernel + 1) * s.channels;
  const long long column = static_cast<long long>(blockIdx.x) * kReduceColumns + threadIdx.x;
  float sum = 0.f;
  if (column < columns)
    for (long long r = threadIdx.y; r < rows; r += kReduceSlices) sum += partial[r * columns + column];
  sums[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y != 0 || column >= columns) return;
  for (int k = 1; k < kReduceSlices; ++k) sum += sums[k][threadIdx.x];
  const int tap = static_cast<int>(column / s.channels), e = static_cast<int>(column % s.channels);
  if (tap < s.kernel) {
    if (dweight != nullptr) store_f(dweight + e * s.kernel + tap, sum);
  } else if (dbias != nullptr) {
    store_f(dbias + e, sum);
  }
}

// ------------------------------------------------------------------ launches

void check_cuda(cudaError_t error, const char* what) {
  if (error != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(error));
}

dim3 tiles(const ConvSiluShape& s) {
  return dim3(static_cast<unsigned>((s.channels + kTileE - 1) / kTileE),
              static_cast<unsigned>((s.time + kTileT - 1) / kTileT), 1);
}

// The backward's Z: enough batch groups that the grid fills the current device once (resident
// blocks per SM × SMs), at most B (and the grid's limit).  A function of the shape and the device
// alone, so the reduction order, and the bits of dw, repeat from run to run.
template <typename Kernel>
int batch_groups(Kernel kernel, const ConvSiluShape& s) {
  int device = 0, sms = 1, per_sm = 1;
  check_cuda(cudaGetDevice(&device), "causal_conv_silu: cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "causal_conv_silu: SM count");
  check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, 0),
             "causal_conv_silu: occupancy");
  const dim3 grid = tiles(s);
  const long long resident = static_cast<long long>(sms) * std::max(per_sm, 1);
  const long long wanted = (resident + grid.x * grid.y - 1) / (grid.x * grid.y);
  return static_cast<int>(std::max(1LL, std::min({wanted, static_cast<long long>(s.batch),
                                                  static_cast<long long>(kMaxGridZ)})));
}

void check(const ConvSiluShape& s, const char* what) {
  if (const char* why = causal_conv_silu_unsupported(s)) {
    if (*why != '\0') throw std::invalid_argument(std::string(what) + ": " + why);
  }
}

// f(T{}, P{}) for the shape's element and parameter types (P: float or T).
template <typename F>
void with_types(const ConvSiluShape& s, F&& f) {
  auto with_element = [&](auto element) {
    using T = decltype(element);
    if (s.param == ScanElement::f32) f(T{}, float{});
    else f(T{}, T{});
  };
  switch (s.element) {
    case ScanElement::f32: with_element(float{}); break;
    case ScanElement::bf16: with_element(__nv_bfloat16{}); break;
    case ScanElement::fp16: with_element(__half{}); break;
  }
}

}  // namespace

const char* causal_conv_silu_unsupported(const ConvSiluShape& s) {
  if (s.batch < 1 || s.time < 1 || s.channels < 1) return "empty shape";
  if (s.kernel < 1 || s.kernel > kConvSiluMaxKernel) return "kernel size K outside 1 .. kConvSiluMaxKernel";
  if ((s.time + kTileT - 1) / kTileT > kMaxGridZ || (s.channels + kTileE - 1) / kTileE > (1 << 30))
    return "sequence too long for the grid";
  if (static_cast<long long>(s.kernel + 1) * s.channels >= (1LL << 31)) return "too many channels";
  if (s.param != ScanElement::f32 && s.param != s.element) return "weight and bias must be float32 or x's dtype";
  if (s.x_batch_stride < 0 || s.x_time_stride < 0) return "negative strides";
  return "";
}

void causal_conv_silu_forward(const ConvSiluShape& s, const void* x, const void* weight, const void* bias, void* u,
                              void* stream) {
  check(s, "causal_conv_silu_forward");
  dim3 grid = tiles(s);
  grid.z = static_cast<unsigned>(std::min(s.batch, kMaxGridZ));
  with_types(s, [&](auto t, auto p) {
    using T = decltype(t);
    using P = decltype(p);
    conv_silu_forward_kernel<T, P><<<grid, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        s, static_cast<const T*>(x), static_cast<const P*>(weight), static_cast<const P*>(bias), static_cast<T*>(u));
  });
  check_cuda(cudaGetLastError(), "causal_conv_silu_forward");
}

long long causal_conv_silu_partial_floats(const ConvSiluShape& s) {
  check(s, "causal_conv_silu_partial_floats");
  long long rows = 0;
  with_types(s, [&](auto t, auto p) {
    rows = static_cast<long long>(batch_groups(conv_silu_backward_kernel<decltype(t), decltype(p)>, s)) *
           tiles(s).y;
  });
  return rows * (s.kernel + 1) * s.channels;
}

void causal_conv_silu_backward(const ConvSiluShape& s, const void* x, const void* weight, const void* bias,
                               const void* g, void* dx, float* partial, void* dweight, void* dbias, void* stream) {
  check(s, "causal_conv_silu_backward");
  if (partial == nullptr) throw std::invalid_argument("causal_conv_silu_backward: no partial-sum scratch");
  const auto st = static_cast<cudaStream_t>(stream);
  with_types(s, [&](auto t, auto p) {
    using T = decltype(t);
    using P = decltype(p);
    dim3 grid = tiles(s);
    grid.z = static_cast<unsigned>(batch_groups(conv_silu_backward_kernel<T, P>, s));
    conv_silu_backward_kernel<T, P><<<grid, kThreads, 0, st>>>(s, static_cast<const T*>(x),
                                                                static_cast<const P*>(weight),
                                                                static_cast<const P*>(bias), static_cast<const T*>(g),
                                                                static_cast<T*>(dx), partial);
    check_cuda(cudaGetLastError(), "causal_conv_silu_backward");
    if (dweight == nullptr && dbias == nullptr) return;
    const long long columns = static_cast<long long>(s.kernel + 1) * s.channels;
    const auto blocks = static_cast<unsigned>((columns + kReduceColumns - 1) / kReduceColumns);
    conv_silu_dw_kernel<P><<<blocks, dim3(kReduceColumns, kReduceSlices), 0, st>>>(
        s, partial, static_cast<long long>(grid.z) * grid.y, static_cast<P*>(dweight), static_cast<P*>(dbias));
    check_cuda(cudaGetLastError(), "causal_conv_silu_backward (dw)");
  });
}

}  // namespace mixlab::cuda::detail
