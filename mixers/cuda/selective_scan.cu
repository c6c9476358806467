// Mamba-1 selective scan, fused with the D skip and the SiLU(z) gate, forward and backward.
//
//   Δ_t = softplus(δ_t + b_δ)                      (per channel e)
//   h_t[j] = exp(Δ_t A[j]) h_{t-1}[j] + Δ_t u_t B_t[j]        j = 0..n-1 (n = 16)
//   y_t = Σ_j h_t[j] C_t[j] + D u_t,   out_t = y_t · SiLU(z_t)
//
// Layout of the work: a block owns 32 channels of one sequence; 4 consecutive threads share one
// channel and hold 4 of its 16 states each in registers (y needs a 2-shuffle sum over the quad).
// Time is walked in chunks of L steps (kForwardChunk 64, kBackwardChunk 32 below): [32 x L]
// tiles of u, δ, z (and dout) and [16 x L] tiles of B, C are copied to shared memory with
// cp.async, double-buffered so that the next chunk's copy overlaps this chunk's arithmetic; every
// input element is read once.  The forward writes
// the state after every 16 steps (n floats per channel) for the backward.
//
// Backward, per 16-step sub-chunk from the last to the first, in two halves of 8 steps (the later
// first): recompute the half's 8 states from the saved state (in registers; 8 rather than 16 keep
// the kernel within 128 registers, so 4 blocks, 16 warps, share an SM), then walk time in reverse
// with the adjoint dh:
//   dy = dout·SiLU(z);  dz = dout·y·σ(z)(1 + z(1-σ(z)));  dh_t += dy C_t
//   dC_t += dy h_t;  dB_t += dh_t Δ u;  du += Σ_j dh Δ B + dy D;  dD += dy u
//   dΔ += Σ_j dh (h_{t-1} e^{ΔA} A + u B);  dA += Σ_t dh h_{t-1} e^{ΔA} Δ
//   dδ = dΔ σ(δ + b_δ) = dΔ (1 - e^{-Δ});  db_δ += dδ;  dh_{t-1} = dh_t e^{ΔA}
// dB, dC are sums over channels: a warp sums its 8 channels with shuffles, the block in shared
// memory, the grid with float atomics.
//
// Time slices (state passing).  With few sequences x channels, one block per 32 channels leaves
// most of the GPU idle, so time is cut into G slices of L steps (whole forward chunks)
// scanned by separate blocks.  The recurrence is linear in h, so over slice g
//   h_end = P_g ⊙ h_begin + ĥ_g,   P_g[j] = exp(A[j] Σ_{t in g} Δ_t),
// with ĥ_g the slice's state scanned from h = 0.  Forward: (1) a summary pass writes ĥ_g and ΣΔ
// per slice (reads u, δ, B); (2) a carry pass walks the G slices per (sequence, channel, state):
// h_in[0] = 0, h_in[g+1] = P_g h_in[g] + ĥ_g; (3) the scan above runs every slice from h_in[g].
// Backward, the same for the adjoint from the end: the reverse recurrence
//   dh_{t-1} = (dh_t + dy_t C_t) exp(Δ_t A)
// is linear in dh too, so a summary pass (reads δ, z, dout, C) gives each slice's local adjoint,
// the carry walks the slices backwards, and the backward above runs every slice from its
// incoming adjoint.  The saved states are global (every 16 steps), so the backward's recompute
// is unchanged.  Cost: one more read of u, δ, B (forward) and δ, z, dout, C (backward).

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "core/cuda/elements.cuh"
#include "mixers/cuda/launch.h"

namespace mixlab::cuda::detail {
namespace {

constexpr int kChannels = 32;          // channels per block
constexpr int kThreads = 4 * kChannels;
constexpr int kPer = kScanStates / 4;  // states per thread
// Time steps per chunk staged in shared memory: the forward's chunk is also the unit of a time
// slice; the backward's divides it (a slice of the forward's chunks is whole backward chunks).
constexpr int kForwardChunk = kScanChunk;
constexpr int kBackwardChunk = 32;  // 4 blocks (16 warps) per SM: 52.1 KiB of shared memory in bf16
constexpr int kSub = kScanStateStride; // steps per backward sub-chunk
constexpr int kHalf = kSub / 2;        // steps of a sub-chunk's history held in registers at once
static_assert(kForwardChunk % kBackwardChunk == 0 && kBackwardChunk % kSub == 0);
// A float [channels x time] tile of L-step chunks has rows of L + 1 (rows land in different banks).
constexpr int padded(int L) { return L + 1; }
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// Reduce-scatter over the 4 lanes of a quad: v[k] holds this lane's part of value k; afterwards
// lane q (= lane % 4) returns the quad's sum of value q.  3 shuffles instead of 4 x 2.
__device__ __forceinline__ float quad_reduce_scatter(const float (&v)[4], int q) {
  const bool hi = (q >> 1) & 1, lo = q & 1;
  float w[2];
#pragma unroll
  for (int k = 0; k < 2; ++k) {
    const float send = hi ? v[k] : v[k + 2], keep = hi ? v[k + 2] : v[k];
    w[k] = keep + __shfl_xor_sync(0xffffffffu, send, 2);
  }
  const float send = lo ? w[0] : w[1], keep = lo ? w[1] : w[0];
  return keep + __shfl_xor_sync(0xffffffffu, send, 1);
}
// The same for M values per step: v[k][m] -> lane q returns the sums of v[q][0..M).
template <int M>
__device__ __forceinline__ void quad_reduce_scatter(const float (&v)[4][M], int q, float (&out)[M]) {
  const bool hi = (q >> 1) & 1, lo = q & 1;
  float w[2][M];
#pragma unroll
  for (int k = 0; k < 2; ++k)
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float send = hi ? v[k][m] : v[k + 2][m], keep = hi ? v[k + 2][m] : v[k][m];
      w[k][m] = keep + __shfl_xor_sync(0xffffffffu, send, 2);
    }
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const float send = lo ? w[0][m] : w[1][m], keep = lo ? w[1][m] : w[0][m];
    out[m] = keep + __shfl_xor_sync(0xffffffffu, send, 1);
  }
}
// Reduce-scatter of 8 values over the 8 channels of a warp (lanes differing in bits 2..4): the
// lane returns the sum of value 4·b4 + 2·b3 + b2 (b = its lane bits).  7 shuffles instead of 24.
__device__ __forceinline__ float channel_reduce_scatter(const float (&v)[8], int lane) {
  const bool b4 = (lane >> 4) & 1, b3 = (lane >> 3) & 1, b2 = (lane >> 2) & 1;
  float w[4], x[2];
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const float send = b4 ? v[k] : v[k + 4], keep = b4 ? v[k + 4] : v[k];
    w[k] = keep + __shfl_xor_sync(0xffffffffu, send, 16);
  }
#pragma unroll
  for (int k = 0; k < 2; ++k) {
    const float send = b3 ? w[k] : w[k + 2], keep = b3 ? w[k + 2] : w[k];
    x[k] = keep + __shfl_xor_sync(0xffffffffu, send, 8);
  }
  const float send = b2 ? x[0] : x[1], keep = b2 ? x[1] : x[0];
  return keep + __shfl_xor_sync(0xffffffffu, send, 4);
}

// A raw tile row: L elements of T plus one 4-byte word of padding (rows land in different banks).
template <class T, int L>
__host__ __device__ constexpr int row_len() { return L + 4 / static_cast<int>(sizeof(T)); }

// Copy rows [0, rows) x steps [t0, t0 + L) of a row-major [rows_total, n] matrix (rows starting
// at r0) into a raw tile; zeros outside.  `aligned`: every row start is 4-byte aligned, so the copy
// goes through cp.async in 4-byte words; otherwise element by element.
template <class T, int L>
__device__ __forceinline__ void stage_raw(T* tile, const T* m, int r0, int rows, int rows_total, int t0, int n,
                                          bool aligned) {
  constexpr int E = 4 / sizeof(T);  // elements per word
  constexpr int W = L / E;          // words per row
  if (aligned) {
    for (int i = threadIdx.x; i < rows * W; i += kThreads) {
      const int r = i / W, w = i % W, tt = t0 + w * E, row = r0 + r;
      const int valid = (row < rows_total && tt < n) ? min(E, n - tt) : 0;
      const T* src = m + (valid ? static_cast<size_t>(row) * n + tt : 0);
      const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(tile + r * row_len<T, L>() + w * E));
      asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src),
                   "r"(valid * static_cast<int>(sizeof(T))));
    }
  } else {
    for (int i = threadIdx.x; i < rows * L; i += kThreads) {
      const int r = i / L, t = i % L, tt = t0 + t, row = r0 + r;
      tile[r * row_len<T, L>() + t] = (row < rows_total && tt < n) ? m[static_cast<size_t>(row) * n + tt] : T(0.f);
    }
  }
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::); }

// The raw inputs of one chunk of L steps.
template <class T, bool BACKWARD, int L>
struct RawChunk {  // every array 16-byte aligned (cp.async needs aligned destinations)
  static constexpr int RL = row_len<T, L>();
  alignas(16) T u[kChannels * RL];
  alignas(16) T delta[kChannels * RL];
  alignas(16) T z[kChannels * RL];
  alignas(16) T dout[BACKWARD ? kChannels * RL : 8];
  alignas(16) T B[kScanStates * RL];
  alignas(16) T C[kScanStates * RL];
};

template <class T, bool BACKWARD, int L>
__device__ __forceinline__ void stage_chunk(RawChunk<T, BACKWARD, L>& raw, const T* u, const T* delta, const T* z,
                                            const T* dout, const T* Bm, const T* Cm, int e0, int channels, int t0,
                                            int n, bool aligned) {
  stage_raw<T, L>(raw.u, u, e0, kChannels, channels, t0, n, aligned);
  stage_raw<T, L>(raw.delta, delta, e0, kChannels, channels, t0, n, aligned);
  stage_raw<T, L>(raw.z, z, e0, kChannels, channels, t0, n, aligned);
  if constexpr (BACKWARD) stage_raw<T, L>(raw.dout, dout, e0, kChannels, channels, t0, n, aligned);
  stage_raw<T, L>(raw.B, Bm, 0, kScanStates, kScanStates, t0, n, aligned);
  stage_raw<T, L>(raw.C, Cm, 0, kScanStates, kScanStates, t0, n, aligned);
  cp_async_commit();
}

// Δ = softplus(δ + b) for valid steps and channels, 0 elsewhere (which makes padded steps no-ops).
template <class T, int L>
__device__ __forceinline__ void softplus_tile(float* dts, const T* delta, const float* bias, int e0, int channels,
                                              int t0, int n) {
  for (int i = threadIdx.x; i < kChannels * L; i += kThreads) {
    const int r = i / L, t = i % L, e = e0 + r;
    dts[r * padded(L) + t] = (e < channels && t0 + t < n)
                            ? softplus(to_f(delta[r * row_len<T, L>() + t]) + (bias ? bias[e] : 0.f))
                            : 0.f;
  }
}
// B and C of a chunk as floats, step-major: bc[(t·2 + 0|1)·n + j] = B|C[j, t], so that the 4 states a
// lane owns at step t are one 16-byte load, already converted.  Consecutive threads take
// consecutive states (the raw rows they read are RL apart: conflict-free for RL odd in words).
template <class T, int L>
__device__ __forceinline__ void transpose_bc(float* bc, const T* B, const T* C) {
  constexpr int RL = row_len<T, L>();
  for (int i = threadIdx.x; i < 2 * kScanStates * L; i += kThreads) {
    const int j = i % kScanStates, which = (i / kScanStates) % 2, t = i / (2 * kScanStates);
    bc[i] = to_f((which ? C : B)[j * RL + t]);
  }
}
__device__ __forceinline__ void load4(const float* p, float (&v)[4]) {
  const float4 q = *reinterpret_cast<const float4*>(p);
  v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
}
template <int L, class T, class S>
__device__ __forceinline__ void unstage(const S* tile, T* m, int e0, int channels, int t0, int n) {
  for (int i = threadIdx.x; i < kChannels * L; i += kThreads) {
    const int r = i / L, t = i % L;
    const int e = e0 + r, tt = t0 + t;
    if (e < channels && tt < n) store_f(m + static_cast<size_t>(e) * n + tt, to_f(tile[r * padded(L) + t]));
  }
}

// Row of the per-slice scratch ([B, E, G] rows of n states, then [B, E, G] sums of Δ).
__device__ __forceinline__ size_t slice_index(int b, int e, int slice, int channels) {
  return (static_cast<size_t>(b) * channels + e) * gridDim.z + slice;
}

// ---------------------------------------------------------------- time slices: summaries, carry

// This block's slice of chunks [first, last) and A[e, this lane's states] · log2(e).
struct SliceChunks {
  int first, last;
};
template <int L>
__device__ __forceinline__ SliceChunks slice_chunk_range(int n, int slice, int slice_chunks) {
  const int n_chunks = (n + L - 1) / L, first = slice * slice_chunks;
  return {first, min(n_chunks, first + slice_chunks)};
}
__device__ __forceinline__ void load_scaled_A(float (&a2)[kPer], const float* A, int e, int quarter, bool valid) {
#pragma unroll
  for (int j = 0; j < kPer; ++j) a2[j] = valid ? A[e * kScanStates + quarter * kPer + j] * kLog2e : 0.f;
}
// A summary's result: this lane's 4 states of the slice's row, and (lane 0 of the quad) its ΣΔ.
__device__ __forceinline__ void store_summary(float* local, float* delta_sum, const float (&v)[kPer], float dt_sum,
                                              int b, int e, int slice, int channels, int quarter) {
  const size_t row = slice_index(b, e, slice, channels);
  *reinterpret_cast<float4*>(local + row * kScanStates + quarter * kPer) = make_float4(v[0], v[1], v[2], v[3]);
  if (quarter == 0) delta_sum[row] = dt_sum;
}

template <class T, int L>
struct SummarySmem {  // per buffer: up to three [32 x L] channel tiles and one [16 x L] state tile
  alignas(16) T rows[2][3][kChannels * row_len<T, L>()];
  alignas(16) T states[2][kScanStates * row_len<T, L>()];
  float dts[kChannels * padded(L)];
  alignas(16) float state_steps[L * kScanStates];  // the state tile as floats, [t][state] (transpose_states)
};

// A [16 x L] state tile (B or C) as floats, step-major: out[t·n + j] = tile[j, t], so that the 4
// states a lane owns at step t are one 16-byte load, already converted.
template <class T, int L>
__device__ __forceinline__ void transpose_states(float* out, const T* tile) {
  constexpr int RL = row_len<T, L>();
  for (int i = threadIdx.x; i < kScanStates * L; i += kThreads) {
    const int j = i % kScanStates, t = i / kScanStates;
    out[i] = to_f(tile[j * RL + t]);
  }
}

// Forward summary of slice g from h = 0:  ĥ[j] = Σ_t exp(A[j] Σ_{s>t} Δ_s) Δ_t u_t B_t[j]  and
// ΣΔ over the slice.  local: [B, E, G, n];  delta_sum: [B, E, G].  Reads u, δ, B only.
template <class T>
__global__ void __launch_bounds__(kThreads)
    scan_forward_summary_kernel(const T* __restrict__ u, const T* __restrict__ delta, const float* __restrict__ A,
                                const T* __restrict__ Bm, const float* __restrict__ delta_bias,
                                float* __restrict__ local, float* __restrict__ delta_sum, int channels, int n,
                                int slice_chunks, bool aligned) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  constexpr int L = kForwardChunk, PAD = padded(L), RL = row_len<T, L>();
  auto& sm = *reinterpret_cast<SummarySmem<T, L>*>(smem_raw);
  const int b = blockIdx.y, e0 = blockIdx.x * kChannels, slice = blockIdx.z;
  const int ch = threadIdx.x / 4, quarter = threadIdx.x % 4, e = e0 + ch;
  const bool valid = e < channels;
  const size_t seq = static_cast<size_t>(b) * channels * n;
  u += seq; delta += seq;
  Bm += static_cast<size_t>(b) * kScanStates * n;
  const auto [first, last] = slice_chunk_range<L>(n, slice, slice_chunks);
  auto stage = [&](int chunk) {  // rows: u, δ; states: B
    const int buf = chunk & 1;
    stage_raw<T, L>(sm.rows[buf][0], u, e0, kChannels, channels, chunk * L, n, aligned);
    stage_raw<T, L>(sm.rows[buf][1], delta, e0, kChannels, channels, chunk * L, n, aligned);
    stage_raw<T, L>(sm.states[buf], Bm, 0, kScanStates, kScanStates, chunk * L, n, aligned);
    cp_async_commit();
  };
  float a2[kPer], h[kPer] = {}, dt_sum = 0.f;
  load_scaled_A(a2, A, e, quarter, valid);
  stage(first);
  for (int chunk = first; chunk < last; ++chunk) {
    const int buf = chunk & 1;
    cp_async_wait_all();
    __syncthreads();
    softplus_tile<T, L>(sm.dts, sm.rows[buf][1], delta_bias, e0, channels, chunk * L, n);
    transpose_states<T, L>(sm.state_steps, sm.states[buf]);
    __syncthreads();
    if (chunk + 1 < last) stage(chunk + 1);
#pragma unroll 4
    for (int t = 0; t < L; ++t) {
      const float dt = sm.dts[ch * PAD + t], dtx = dt * to_f(sm.rows[buf][0][ch * RL + t]);
      float bq[kPer];
      load4(sm.state_steps + t * kScanStates + quarter * kPer, bq);
      dt_sum += dt;
#pragma unroll
      for (int j = 0; j < kPer; ++j) h[j] = exp2f(dt * a2[j]) * h[j] + dtx * bq[j];
    }
  }
  if (valid) store_summary(local, delta_sum, h, dt_sum, b, e, slice, channels, quarter);
}

// Backward summary of slice g from dh = 0, walking its steps backwards:
//   dh <- (dh + dy_t C_t) exp(Δ_t A),  dy_t = dout_t z_t σ(z_t),
// which leaves the slice's share of the adjoint of the state before it; and ΣΔ over the slice.
// Reads δ, z, dout, C only.
template <class T>
__global__ void __launch_bounds__(kThreads)
    scan_backward_summary_kernel(const T* __restrict__ delta, const float* __restrict__ A, const T* __restrict__ Cm,
                                 const T* __restrict__ z, const float* __restrict__ delta_bias,
                                 const T* __restrict__ dout, float* __restrict__ local,
                                 float* __restrict__ delta_sum, int channels, int n, int slice_chunks, bool aligned) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  constexpr int L = kBackwardChunk, PAD = padded(L), RL = row_len<T, L>();
  auto& sm = *reinterpret_cast<SummarySmem<T, L>*>(smem_raw);
  const int b = blockIdx.y, e0 = blockIdx.x * kChannels, slice = blockIdx.z;
  const int ch = threadIdx.x / 4, quarter = threadIdx.x % 4, e = e0 + ch;
  const bool valid = e < channels;
  const size_t seq = static_cast<size_t>(b) * channels * n;
  delta += seq; z += seq; dout += seq;
  Cm += static_cast<size_t>(b) * kScanStates * n;
  const auto [first, last] = slice_chunk_range<L>(n, slice, slice_chunks);
  auto stage = [&](int chunk) {  // rows: z, δ, dout; states: C
    const int buf = chunk & 1;
    stage_raw<T, L>(sm.rows[buf][0], z, e0, kChannels, channels, chunk * L, n, aligned);
    stage_raw<T, L>(sm.rows[buf][1], delta, e0, kChannels, channels, chunk * L, n, aligned);
    stage_raw<T, L>(sm.rows[buf][2], dout, e0, kChannels, channels, chunk * L, n, aligned);
    stage_raw<T, L>(sm.states[buf], Cm, 0, kScanStates, kScanStates, chunk * L, n, aligned);
    cp_async_commit();
  };
  float a2[kPer], dh[kPer] = {}, dt_sum = 0.f;
  load_scaled_A(a2, A, e, quarter, valid);
  stage(last - 1);
  for (int chunk = last - 1; chunk >= first; --chunk) {
    const int buf = chunk & 1;
    cp_async_wait_all();
    __syncthreads();
    softplus_tile<T, L>(sm.dts, sm.rows[buf][1], delta_bias, e0, channels, chunk * L, n);
    transpose_states<T, L>(sm.state_steps, sm.states[buf]);
    __syncthreads();
    if (chunk > first) stage(chunk - 1);
#pragma unroll 4
    for (int t = L - 1; t >= 0; --t) {
      const float dt = sm.dts[ch * PAD + t], zz = to_f(sm.rows[buf][0][ch * RL + t]);
      const float dy = to_f(sm.rows[buf][2][ch * RL + t]) * zz * sigmoid(zz);
      float cq[kPer];
      load4(sm.state_steps + t * kScanStates + quarter * kPer, cq);
      dt_sum += dt;
#pragma unroll
      for (int j = 0; j < kPer; ++j) dh[j] = (dh[j] + dy * cq[j]) * exp2f(dt * a2[j]);
    }
  }
  if (valid) store_summary(local, delta_sum, dh, dt_sum, b, e, slice, channels, quarter);
}

// The carry over slices, in place, one thread per (sequence, channel, state j):
//   forward  (from the first slice): slot g <- h entering g;   h <- exp(A[j] ΣΔ_g) h + ĥ_g
//   backward (from the last slice):  slot g <- dh entering g;  dh <- exp(A[j] ΣΔ_g) dh + dĥ_g
// local: [B, E, G, n] (summaries in, incoming states out); delta_sum: [B, E, G].
__global__ void scan_carry_kernel(float* __restrict__ local, const float* __restrict__ delta_sum,
                                  const float* __restrict__ A, int batch, int channels, int slices, bool backward) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<long long>(batch) * channels * kScanStates) return;
  const int j = static_cast<int>(i % kScanStates);
  const long long seq_channel = i / kScanStates;  // b·E + e
  const int e = static_cast<int>(seq_channel % channels);
  const float a = A[e * kScanStates + j];
  float carried = 0.f;
  for (int k = 0; k < slices; ++k) {
    const int g = backward ? slices - 1 - k : k;
    const long long row = seq_channel * slices + g;
    const float summary = local[row * kScanStates + j];
    local[row * kScanStates + j] = carried;
    carried = __expf(a * delta_sum[row]) * carried + summary;
  }
}

template <class T>
struct ForwardSmem {
  static constexpr int L = kForwardChunk;
  RawChunk<T, false, L> raw[2];
  float dts[kChannels * padded(L)];
  T out[kChannels * padded(L)];              // y in the output's type (rounded once, as unstage would)
  alignas(16) float bc[L * 2 * kScanStates];  // B, C as floats, [t][B|C][state] (transpose_bc)
};

template <class T>
__global__ void __launch_bounds__(kThreads, 4)  // 4 blocks (16 warps) per SM, as shared memory allows
    scan_forward_kernel(const T* __restrict__ u, const T* __restrict__ delta, const float* __restrict__ A,
                        const T* __restrict__ Bm, const T* __restrict__ Cm, const float* __restrict__ D,
                        const T* __restrict__ z, const float* __restrict__ delta_bias, T* __restrict__ out,
                        float* __restrict__ states, const float* __restrict__ h_in, int channels, int n,
                        int slice_chunks, bool aligned) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  auto& sm = *reinterpret_cast<ForwardSmem<T>*>(smem_raw);
  constexpr int L = kForwardChunk, PAD = padded(L), RL = row_len<T, L>();
  const int b = blockIdx.y, e0 = blockIdx.x * kChannels, slice = blockIdx.z;
  const int ch = threadIdx.x / 4, quarter = threadIdx.x % 4, e = e0 + ch;
  const bool valid = e < channels;
  const size_t seq = static_cast<size_t>(b) * channels * n;
  u += seq; delta += seq; z += seq; out += seq;
  Bm += static_cast<size_t>(b) * kScanStates * n;
  Cm += static_cast<size_t>(b) * kScanStates * n;
  const int n_chunks = (n + L - 1) / L, n_saved = (n + kSub - 1) / kSub;
  float* my_states = states ? states + (static_cast<size_t>(b) * channels + e) * n_saved * kScanStates + quarter * kPer : nullptr;

  const int first = slice * slice_chunks, last = min(n_chunks, first + slice_chunks);  // this block's chunks
  float a2[kPer], h[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    a2[j] = valid ? A[e * kScanStates + quarter * kPer + j] * kLog2e : 0.f;
    h[j] = (h_in && valid) ? h_in[slice_index(b, e, slice, channels) * kScanStates + quarter * kPer + j] : 0.f;
  }
  const float d_skip = valid ? D[e] : 0.f;

  stage_chunk<T, false>(sm.raw[first & 1], u, delta, z, nullptr, Bm, Cm, e0, channels, first * L, n, aligned);
  for (int chunk = first; chunk < last; ++chunk) {
    const int t0 = chunk * L;
    const auto& raw = sm.raw[chunk & 1];
    cp_async_wait_all();
    __syncthreads();
    softplus_tile<T, L>(sm.dts, raw.delta, delta_bias, e0, channels, t0, n);
    transpose_bc<T, L>(sm.bc, raw.B, raw.C);
    __syncthreads();
    if (chunk + 1 < last)
      stage_chunk<T, false>(sm.raw[(chunk + 1) & 1], u, delta, z, nullptr, Bm, Cm, e0, channels, t0 + L, n, aligned);
#pragma unroll 1
    for (int sub = 0; sub < L / kSub; ++sub) {
#pragma unroll
      for (int g4 = 0; g4 < kSub / 4; ++g4) {
        float yp[4];  // this lane's 4 states' share of y, for 4 steps
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          const int t = sub * kSub + g4 * 4 + k;
          const float dt = sm.dts[ch * PAD + t], dtx = dt * to_f(raw.u[ch * RL + t]);
          float bq[kPer], cq[kPer];
          load4(sm.bc + (t * 2) * kScanStates + quarter * kPer, bq);
          load4(sm.bc + (t * 2 + 1) * kScanStates + quarter * kPer, cq);
          yp[k] = 0.f;
#pragma unroll
          for (int j = 0; j < kPer; ++j) {
            h[j] = exp2f(dt * a2[j]) * h[j] + dtx * bq[j];
            yp[k] += h[j] * cq[j];
          }
        }
        const float y = quad_reduce_scatter(yp, quarter);  // y of step g4·4 + quarter
        const int t = sub * kSub + g4 * 4 + quarter;
        const float x = to_f(raw.u[ch * RL + t]), zz = to_f(raw.z[ch * RL + t]);
        store_f(&sm.out[ch * PAD + t], (y + d_skip * x) * zz * sigmoid(zz));
      }
      const int saved = chunk * (L / kSub) + sub;
      if (my_states && valid && saved < n_saved)
        *reinterpret_cast<float4*>(my_states + static_cast<size_t>(saved) * kScanStates) = make_float4(h[0], h[1], h[2], h[3]);
    }
    __syncthreads();
    unstage<L>(sm.out, out, e0, channels, t0, n);
  }
}

template <class T>
struct BackwardSmem {
  static constexpr int L = kBackwardChunk, PAD = padded(L);
  RawChunk<T, true, L> raw[2];
  float dts[kChannels * PAD];  // Δ
  T gu[kChannels * PAD];       // du, dδ, dz in the output's type (rounded once, as unstage would)
  T gd[kChannels * PAD];
  T gz[kChannels * PAD];
  float red[(kThreads / 32) * 2 * kScanStates * PAD];  // per warp: Σ over its 8 channels of dB, dC
  alignas(16) float bc[L * 2 * kScanStates];            // B, C as floats, [t][B|C][state] (transpose_bc)
};

template <class T>
__global__ void __launch_bounds__(kThreads, 4)  // 4 blocks (16 warps) per SM: at most 128 registers
    scan_backward_kernel(const T* __restrict__ u, const T* __restrict__ delta, const float* __restrict__ A,
                         const T* __restrict__ Bm, const T* __restrict__ Cm, const float* __restrict__ D,
                         const T* __restrict__ z, const float* __restrict__ delta_bias,
                         const float* __restrict__ states, const T* __restrict__ dout, T* __restrict__ du,
                         T* __restrict__ ddelta, float* __restrict__ dA, float* __restrict__ dB,
                         float* __restrict__ dC, float* __restrict__ dD, T* __restrict__ dz,
                         float* __restrict__ ddelta_bias, const float* __restrict__ dh_in, int channels, int n,
                         int slice_chunks, bool aligned) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  auto& sm = *reinterpret_cast<BackwardSmem<T>*>(smem_raw);
  constexpr int L = kBackwardChunk, PAD = padded(L), RL = row_len<T, L>();
  const int b = blockIdx.y, e0 = blockIdx.x * kChannels, slice = blockIdx.z;
  const int ch = threadIdx.x / 4, quarter = threadIdx.x % 4, e = e0 + ch;
  const int lane = threadIdx.x & 31, warp = threadIdx.x / 32;
  const bool valid = e < channels;
  const size_t seq = static_cast<size_t>(b) * channels * n;
  u += seq; delta += seq; z += seq; dout += seq; du += seq; ddelta += seq; dz += seq;
  const size_t bc_off = static_cast<size_t>(b) * kScanStates * n;
  Bm += bc_off; Cm += bc_off; dB += bc_off; dC += bc_off;
  const int n_chunks = (n + L - 1) / L, n_saved = (n + kSub - 1) / kSub;
  const float* my_states = states + (static_cast<size_t>(b) * channels + (valid ? e : 0)) * n_saved * kScanStates + quarter * kPer;

  const int first = slice * slice_chunks, last = min(n_chunks, first + slice_chunks);  // this block's chunks
  float a[kPer], a2[kPer], dh[kPer], da_acc[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    a[j] = valid ? A[e * kScanStates + quarter * kPer + j] : 0.f;
    a2[j] = a[j] * kLog2e;
    dh[j] = (dh_in && valid) ? dh_in[slice_index(b, e, slice, channels) * kScanStates + quarter * kPer + j] : 0.f;
    da_acc[j] = 0.f;
  }
  const float d_skip = valid ? D[e] : 0.f;
  float dd_acc = 0.f, dbias_acc = 0.f;

  stage_chunk<T, true>(sm.raw[(last - 1) & 1], u, delta, z, dout, Bm, Cm, e0, channels, (last - 1) * L, n, aligned);
  for (int chunk = last - 1; chunk >= first; --chunk) {
    const int t0 = chunk * L;
    const auto& raw = sm.raw[chunk & 1];
    cp_async_wait_all();
    __syncthreads();
    softplus_tile<T, L>(sm.dts, raw.delta, delta_bias, e0, channels, t0, n);
    transpose_bc<T, L>(sm.bc, raw.B, raw.C);
    __syncthreads();
    if (chunk > first)
      stage_chunk<T, true>(sm.raw[(chunk - 1) & 1], u, delta, z, dout, Bm, Cm, e0, channels, t0 - L, n, aligned);

#pragma unroll 1
    for (int sub = L / kSub - 1; sub >= 0; --sub) {
      // A sub-chunk past the last step changes nothing (Δ = 0 there), and the state it would start
      // from was never saved: reading it read past this channel's states (NaN at the end of the
      // buffer, found by CudaKernels.SelectiveScanChunkEdgesMatchFloat64Reference at N = 129).
      if (t0 + sub * kSub >= n) continue;
      const int saved = chunk * (L / kSub) + sub;  // this sub-chunk starts from state saved - 1
      float h0[kPer];  // the state before the sub-chunk
      if (saved > 0 && valid) {
        const float4 s4 = *reinterpret_cast<const float4*>(my_states + static_cast<size_t>(saved - 1) * kScanStates);
        h0[0] = s4.x; h0[1] = s4.y; h0[2] = s4.z; h0[3] = s4.w;
      } else {
#pragma unroll
        for (int j = 0; j < kPer; ++j) h0[j] = 0.f;
      }
      // Two halves of kHalf steps, the later first: a half's history is recomputed from h0 (the
      // later half after stepping through the earlier one unrecorded), which keeps kHalf steps of
      // states and decays in registers instead of kSub.
#pragma unroll 1
      for (int half = 1; half >= 0; --half) {
        const int s0 = sub * kSub + half * kHalf;  // the half's first step in the chunk
        float hs[kPer], hist[kHalf][kPer], decays[kHalf][kPer];  // state before the half; h_t, exp(Δ_t A)
#pragma unroll
        for (int j = 0; j < kPer; ++j) hs[j] = h0[j];
        if (half == 1) {
#pragma unroll
          for (int i = 0; i < kHalf; ++i) {
            const int t = sub * kSub + i;
            const float dt = sm.dts[ch * PAD + t], dtx = dt * to_f(raw.u[ch * RL + t]);
            float bq[kPer];
            load4(sm.bc + (t * 2) * kScanStates + quarter * kPer, bq);
#pragma unroll
            for (int j = 0; j < kPer; ++j) hs[j] = exp2f(dt * a2[j]) * hs[j] + dtx * bq[j];
          }
        }
#pragma unroll
        for (int i = 0; i < kHalf; ++i) {
          const int t = s0 + i;
          const float dt = sm.dts[ch * PAD + t], dtx = dt * to_f(raw.u[ch * RL + t]);
          float bq[kPer];
          load4(sm.bc + (t * 2) * kScanStates + quarter * kPer, bq);
#pragma unroll
          for (int j = 0; j < kPer; ++j) {
            const float prev = i == 0 ? hs[j] : hist[i - 1][j];
            decays[i][j] = exp2f(dt * a2[j]);
            hist[i][j] = decays[i][j] * prev + dtx * bq[j];
          }
        }
#pragma unroll
        for (int g4 = kHalf / 4 - 1; g4 >= 0; --g4) {
          float part[4][3];  // this lane's share of dΔ, du, y for 4 steps
#pragma unroll
          for (int k = 3; k >= 0; --k) {
            const int i = g4 * 4 + k, t = s0 + i;
            const float dt = sm.dts[ch * PAD + t], x = to_f(raw.u[ch * RL + t]);
            const float zz = to_f(raw.z[ch * RL + t]), go = to_f(raw.dout[ch * RL + t]);
            const float dy = go * zz * sigmoid(zz), dtx = dt * x;
            // dΔ = Σ_j g_j a_j + u Σ_j dh_j B_j and du = Δ Σ_j dh_j B_j: the sum over states once.
            float g_a = 0.f, dh_b = 0.f, y = 0.f, red[8];  // red: dB (4 states), dC (4 states)
            float bq[kPer], cq[kPer];
            load4(sm.bc + (t * 2) * kScanStates + quarter * kPer, bq);
            load4(sm.bc + (t * 2 + 1) * kScanStates + quarter * kPer, cq);
#pragma unroll
            for (int j = 0; j < kPer; ++j) {
              y += hist[i][j] * cq[j];
              dh[j] += dy * cq[j];
              const float decay = decays[i][j];
              const float prev = i == 0 ? hs[j] : hist[i - 1][j];
              const float g_decay = dh[j] * prev * decay;  // ∂L/∂(ΔA) through the decay
              g_a += g_decay * a[j];
              dh_b += dh[j] * bq[j];
              red[j] = dh[j] * dtx;
              red[4 + j] = dy * hist[i][j];
              da_acc[j] += g_decay * dt;
              dh[j] *= decay;
            }
            part[k][0] = g_a + x * dh_b;
            part[k][1] = dt * dh_b;
            part[k][2] = y;
            // Sum dB, dC over the warp's 8 channels; each lane keeps one (state, dB|dC) of step t.
            const float r = channel_reduce_scatter(red, lane);
            const int idx = ((lane >> 4) & 1) * 4 + ((lane >> 3) & 1) * 2 + ((lane >> 2) & 1);
            sm.red[((warp * 2 + (idx >> 2)) * kScanStates + quarter * kPer + (idx & 3)) * PAD + t] = r;
          }
          float full[3];
          quad_reduce_scatter<3>(part, quarter, full);  // sums of step g4·4 + quarter of the half
          const int t = s0 + g4 * 4 + quarter;
          const float dt = sm.dts[ch * PAD + t], x = to_f(raw.u[ch * RL + t]);
          const float zz = to_f(raw.z[ch * RL + t]), go = to_f(raw.dout[ch * RL + t]);
          const float sz = sigmoid(zz), dy = go * zz * sz, y = full[2] + d_skip * x;
          const float g_delta = full[0] * (1.f - __expf(-dt));  // dδ = dΔ σ(δ + b)
          store_f(&sm.gu[ch * PAD + t], full[1] + dy * d_skip);
          store_f(&sm.gd[ch * PAD + t], g_delta);
          store_f(&sm.gz[ch * PAD + t], go * y * sz * (1.f + zz * (1.f - sz)));
          dd_acc += dy * x;
          dbias_acc += g_delta;
        }
      }
    }
    __syncthreads();
    unstage<L>(sm.gu, du, e0, channels, t0, n);
    unstage<L>(sm.gd, ddelta, e0, channels, t0, n);
    unstage<L>(sm.gz, dz, e0, channels, t0, n);
    for (int i = threadIdx.x; i < 2 * kScanStates * L; i += kThreads) {
      const int which = i / (kScanStates * L), j = (i / L) % kScanStates, t = i % L, tt = t0 + t;
      if (tt < n) {
        float sum = 0.f;
#pragma unroll
        for (int w = 0; w < kThreads / 32; ++w) sum += sm.red[((w * 2 + which) * kScanStates + j) * PAD + t];
        atomicAdd((which ? dC : dB) + static_cast<size_t>(j) * n + tt, sum);
      }
    }
  }
  dd_acc = quad_sum(dd_acc);
  dbias_acc = quad_sum(dbias_acc);
  if (valid) {
#pragma unroll
    for (int j = 0; j < kPer; ++j) atomicAdd(dA + e * kScanStates + quarter * kPer + j, da_acc[j]);
    if (quarter == 0) {
      atomicAdd(dD + e, dd_acc);
      if (ddelta_bias) atomicAdd(ddelta_bias + e, dbias_acc);
    }
  }
}

void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("mixers/cuda/selective_scan.cu: ") + what + ": " + cudaGetErrorString(err));
}

void check_launch(const char* what) { check_cuda(cudaGetLastError(), what); }

void check_shape(const ScanShape& sh) {
  if (sh.states != kScanStates)
    throw std::invalid_argument("mixers/cuda/selective_scan: d_state " + std::to_string(sh.states) +
                                " (the CUDA kernel supports " + std::to_string(kScanStates) + ")");
}

// Every row of a [rows, n] matrix starts 4-byte aligned (the base pointers come from the caching
// allocator, 256-byte aligned).
template <class T>
bool rows_aligned(int n) { return (static_cast<size_t>(n) * sizeof(T)) % 4 == 0; }

// Forward chunks per slice: the G slices cover N in whole forward chunks (the last one short).
int slice_chunks(const ScanShape& sh) {
  const int n_chunks = (sh.n + kForwardChunk - 1) / kForwardChunk;
  return (n_chunks + sh.time_splits - 1) / sh.time_splits;
}

template <class Kernel>
void set_smem(Kernel kernel, size_t smem) {
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
             "raising the dynamic shared-memory limit");
}

// The carry pass over the slices' summaries (workspace: [B, E, G, n] states, then [B, E, G] ΣΔ).
void carry(const ScanShape& sh, const float* A, float* workspace, bool backward, cudaStream_t stream) {
  const long long threads = static_cast<long long>(sh.batch) * sh.channels * kScanStates;
  float* delta_sum = workspace + static_cast<size_t>(threads) * sh.time_splits;
  scan_carry_kernel<<<static_cast<unsigned>((threads + 255) / 256), 256, 0, stream>>>(
      workspace, delta_sum, A, sh.batch, sh.channels, sh.time_splits, backward);
  check_launch("carry over time slices");
}

template <class T>
void forward_typed(const ScanShape& sh, const void* u, const void* delta, const float* A, const void* B,
                   const void* C, const float* D, const void* z, const float* bias, void* out, float* states,
                   float* workspace, cudaStream_t stream) {
  const dim3 grid((sh.channels + kChannels - 1) / kChannels, sh.batch, sh.time_splits);
  const int chunks = slice_chunks(sh);
  const bool aligned = rows_aligned<T>(sh.n);
  const float* h_in = nullptr;
  if (sh.time_splits > 1) {
    float* delta_sum = workspace + static_cast<size_t>(sh.batch) * sh.channels * sh.time_splits * kScanStates;
    using Smem = SummarySmem<T, kForwardChunk>;
    set_smem(scan_forward_summary_kernel<T>, sizeof(Smem));
    scan_forward_summary_kernel<T><<<grid, kThreads, sizeof(Smem), stream>>>(
        static_cast<const T*>(u), static_cast<const T*>(delta), A, static_cast<const T*>(B), bias, workspace,
        delta_sum, sh.channels, sh.n, chunks, aligned);
    check_launch("forward summary of time slices");
    carry(sh, A, workspace, false, stream);
    h_in = workspace;
  }
  set_smem(scan_forward_kernel<T>, sizeof(ForwardSmem<T>));
  scan_forward_kernel<T><<<grid, kThreads, sizeof(ForwardSmem<T>), stream>>>(
      static_cast<const T*>(u), static_cast<const T*>(delta), A, static_cast<const T*>(B), static_cast<const T*>(C),
      D, static_cast<const T*>(z), bias, static_cast<T*>(out), states, h_in, sh.channels, sh.n, chunks, aligned);
  check_launch("forward");
}

template <class T>
void backward_typed(const ScanShape& sh, const void* u, const void* delta, const float* A, const void* B,
                    const void* C, const float* D, const void* z, const float* bias, const float* states,
                    const void* dout, void* du, void* ddelta, float* dA, float* dB, float* dC, float* dD, void* dz,
                    float* dbias, float* workspace, cudaStream_t stream) {
  const dim3 grid((sh.channels + kChannels - 1) / kChannels, sh.batch, sh.time_splits);
  const int chunks = slice_chunks(sh) * (kForwardChunk / kBackwardChunk);  // backward chunks per slice
  const bool aligned = rows_aligned<T>(sh.n);
  const float* dh_in = nullptr;
  if (sh.time_splits > 1) {
    float* delta_sum = workspace + static_cast<size_t>(sh.batch) * sh.channels * sh.time_splits * kScanStates;
    using Smem = SummarySmem<T, kBackwardChunk>;
    set_smem(scan_backward_summary_kernel<T>, sizeof(Smem));
    scan_backward_summary_kernel<T><<<grid, kThreads, sizeof(Smem), stream>>>(
        static_cast<const T*>(delta), A, static_cast<const T*>(C), static_cast<const T*>(z), bias,
        static_cast<const T*>(dout), workspace, delta_sum, sh.channels, sh.n, chunks, aligned);
    check_launch("backward summary of time slices");
    carry(sh, A, workspace, true, stream);
    dh_in = workspace;
  }
  set_smem(scan_backward_kernel<T>, sizeof(BackwardSmem<T>));
  scan_backward_kernel<T><<<grid, kThreads, sizeof(BackwardSmem<T>), stream>>>(
      static_cast<const T*>(u), static_cast<const T*>(delta), A, static_cast<const T*>(B), static_cast<const T*>(C),
      D, static_cast<const T*>(z), bias, states, static_cast<const T*>(dout), static_cast<T*>(du),
      static_cast<T*>(ddelta), dA, dB, dC, dD, static_cast<T*>(dz), dbias, dh_in, sh.channels, sh.n, chunks, aligned);
  check_launch("backward");
}

void check_splits(const ScanShape& sh, const float* workspace) {
  const int n_chunks = (sh.n + kForwardChunk - 1) / kForwardChunk;
  if (sh.time_splits < 1 || sh.time_splits > n_chunks || (sh.time_splits - 1) * slice_chunks(sh) >= n_chunks)
    throw std::invalid_argument("mixers/cuda/selective_scan: time_splits " + std::to_string(sh.time_splits) +
                                " for N = " + std::to_string(sh.n) +
                                " (use selective_scan_time_splits: every slice must hold a chunk)");
  if (sh.time_splits > 1 && !workspace)
    throw std::invalid_argument("mixers/cuda/selective_scan: time_splits > 1 needs a workspace of "
                                "selective_scan_workspace_floats(shape) floats");
}

}  // namespace

int selective_scan_time_splits(const ScanShape& sh) {
  static const int slots = [] {  // resident 128-thread scan blocks the device holds (4 per SM by shared memory)
    int device = 0, sms = 0;
    check_cuda(cudaGetDevice(&device), "cudaGetDevice");
    check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "reading the SM count");
    return 4 * sms;
  }();
  const long long blocks = static_cast<long long>((sh.channels + kChannels - 1) / kChannels) * sh.batch;
  if (blocks == 0 || 2 * blocks >= slots) return 1;
  const int wanted = static_cast<int>(std::min<long long>((slots + blocks - 1) / blocks, sh.n / kScanMinSlice));
  if (wanted <= 1) return 1;
  const int n_chunks = (sh.n + kForwardChunk - 1) / kForwardChunk, per_slice = (n_chunks + wanted - 1) / wanted;
  return (n_chunks + per_slice - 1) / per_slice;  // every slice non-empty
}

long long selective_scan_workspace_floats(const ScanShape& sh) {
  if (sh.time_splits <= 1) return 0;
  return static_cast<long long>(sh.batch) * sh.channels * sh.time_splits * (kScanStates + 1);
}

void selective_scan_forward(const ScanShape& sh, const void* u, const void* delta, const float* A, const void* B,
                            const void* C, const float* D, const void* z, const float* bias, void* out,
                            float* states, float* workspace, void* stream_ptr) {
  check_shape(sh);
  if (sh.batch == 0 || sh.channels == 0 || sh.n == 0) return;
  check_splits(sh, workspace);
  auto stream = static_cast<cudaStream_t>(stream_ptr);
  switch (sh.element) {
    case ScanElement::f32: forward_typed<float>(sh, u, delta, A, B, C, D, z, bias, out, states, workspace, stream); break;
    case ScanElement::bf16:
      forward_typed<__nv_bfloat16>(sh, u, delta, A, B, C, D, z, bias, out, states, workspace, stream);
      break;
    case ScanElement::fp16: forward_typed<__half>(sh, u, delta, A, B, C, D, z, bias, out, states, workspace, stream); break;
  }
}

void selective_scan_backward(const ScanShape& sh, const void* u, const void* delta, const float* A, const void* B,
                             const void* C, const float* D, const void* z, const float* bias, const float* states,
                             const void* dout, void* du, void* ddelta, float* dA, float* dB, float* dC, float* dD,
                             void* dz, float* dbias, float* workspace, void* stream_ptr) {
  check_shape(sh);
  if (sh.batch == 0 || sh.channels == 0 || sh.n == 0) return;
  check_splits(sh, workspace);
  auto stream = static_cast<cudaStream_t>(stream_ptr);
#define MIXLAB_SCAN_BACKWARD(T)                                                                               \
  backward_typed<T>(sh, u, delta, A, B, C, D, z, bias, states, dout, du, ddelta, dA, dB, dC, dD, dz, dbias, \
                    workspace, stream)
  switch (sh.element) {
    case ScanElement::f32: MIXLAB_SCAN_BACKWARD(float); break;
    case ScanElement::bf16: MIXLAB_SCAN_BACKWARD(__nv_bfloat16); break;
    case ScanElement::fp16: MIXLAB_SCAN_BACKWARD(__half); break;
  }
#undef MIXLAB_SCAN_BACKWARD
}

}  // namespace mixlab::cuda::detail
