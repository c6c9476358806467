// Mamba-1's decoding step after the convolution, its x projection included, as one kernel (issue
// 13: a mamba-546m layer's step was four dependent kernels, 24.8 µs against a 5.6 µs floor; the x
// projection alone was a kernel of 20 blocks).  The op is mixlab::projected_selective_scan_step
// (mixers/selective_scan.h), whose reference is the product then selective_scan_step:
//
//   [δ, B̃, C̃] = u W_xᵀ                                   W_x: [R + 2n, E];  per sequence: [R + 2n]
//   Δ[e]      = softplus(Σ_r W_Δ[e, r] δ[r] + b_Δ[e])     W_Δ: [E, R]
//   h[e, j]   ← exp(Δ[e] A[e, j]) h[e, j] + Δ[e] u[e] B̃[j]
//   y[e]      = (Σ_j h[e, j] C̃[j] + D[e] u[e]) · SiLU(z[e])
//
// The projection sums over every channel, the update is per channel: a cluster of Q blocks
// (thread block clusters, sm_90) serves one sequence, block q owning channels [q·E/Q, (q+1)·E/Q).
// Before the wait for the kernel that wrote u and z (core/cuda/dependent_launch.cuh, rule 1: these
// are weights) each block copies its slices of W_x ([R + 2n] × E/Q) and W_Δ (E/Q × R) into shared
// memory, holds its A, D and b_Δ in registers and asks L2 for its state rows (a prefetch returns
// nothing, so it cannot read a value before the wait).  Then:
//   1. its share of the projection, Σ over its channels of W_x[:, e] u[e]: R + 2n partial sums
//   2. the cluster barrier; each block adds the Q blocks' partials, read from their shared memory
//      in rank order (so every block of the cluster holds the same δ, B̃, C̃)
//   3. Δ of its channels, two lanes per channel, each over half of the ranks
//   4. the state update, 16 lanes per channel (lane j holds state j; a warp's state loads and
//      stores contiguous; the loads issued right after the wait, before step 1), y summed over the
//      16 lanes by shuffles
// Arithmetic in float32; u, z, W_x, W_Δ and y bf16; the state, A, D and b_Δ float32.

#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "core/cuda/cluster_launch.cuh"
#include "core/cuda/elements.cuh"
#include "mixers/cuda/launch.h"

namespace mixlab::cuda::detail {
namespace {

namespace cg = cooperative_groups;
using bf16 = __nv_bfloat16;

constexpr int kThreads = 512;
[[maybe_unused]] constexpr int kWarps = kThreads / 32;
constexpr int kStates = 16;                          // n: the lanes of a channel in step 4
constexpr int kVector = 8;                           // bf16 in one 16-byte copy
[[maybe_unused]] constexpr int kMaxItems = kThreads / 2 * kStates / kThreads;  // state items per thread at E/Q = 256: 8

// 16 bytes from global to shared memory without passing through registers (cp.async, sm_80).
__device__ __forceinline__ void copy_16_bytes(void* shared_destination, const void* global_source) {
  const unsigned destination = static_cast<unsigned>(__cvta_generic_to_shared(shared_destination));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(destination), "l"(global_source) : "memory");
}
__device__ __forceinline__ void wait_for_copies() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }
__device__ __forceinline__ void prefetch_to_l2(const void* p) {
  asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p));
}
// Σ_i w[i] x[i] over the 8 bf16 of one 16-byte vector w.
__device__ __forceinline__ float dot8(const uint4& w, const float* x) {
  const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&w);
  float sum = 0.f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(pairs[i]);
    sum += f.x * x[2 * i] + f.y * x[2 * i + 1];
  }
  return sum;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
// The sum over the aligned 16-lane half of the warp; every lane of the warp calls it.
__device__ __forceinline__ float half_warp_sum(float v) {
#pragma unroll
  for (int offset = kStates / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ __forceinline__ float silu(float x) { return x * sigmoid(x); }

// The shared memory of a block, in this order (every part 16-byte aligned: channels_per_block is
// a multiple of 32, width and rank multiples of 8):
//   W_x slice [width][channels] bf16 · W_Δ slice [channels][rank + 8] bf16 (rows padded so that
//   the lanes of a warp, one row each, start 4 banks apart) · partial [width] · projected [width]
//   · u [channels] · z [channels] · Δ [channels] float32
constexpr int kRankPad = 8;
struct SharedParts {
  bf16 *x_weight, *delta_weight;
  float *partial, *projected, *u, *z, *step;
};
__device__ SharedParts shared_parts(unsigned char* base, int width, int channels, int rank) {
  SharedParts p;
  p.x_weight = reinterpret_cast<bf16*>(base);
  p.delta_weight = p.x_weight + width * channels;
  p.partial = reinterpret_cast<float*>(p.delta_weight + channels * (rank + kRankPad));
  p.projected = p.partial + width;
  p.u = p.projected + width;
  p.z = p.u + channels;
  p.step = p.z + channels;
  return p;
}

// grid: batch · Q blocks in clusters of Q; block q of the cluster for sequence b owns channels
// [q·C, (q+1)·C), C = E / Q ≤ kThreads / 2.
__global__ void __launch_bounds__(kThreads, 1)
    projected_state_update_kernel(ProjectedStateUpdateShape s, float* __restrict__ state, const bf16* __restrict__ u,
                                  const bf16* __restrict__ x_weight, const bf16* __restrict__ delta_weight,
                                  const float* __restrict__ A, const float* __restrict__ D,
                                  const bf16* __restrict__ z, const float* __restrict__ delta_bias,
                                  bf16* __restrict__ out) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
  __trap();  // clusters need sm_90; projected_state_update_supported asks for compute capability 9
#else
  extern __shared__ __align__(16) unsigned char shared[];
  const cg::cluster_group cluster = cg::this_cluster();
  const int blocks_per_sequence = static_cast<int>(cluster.num_blocks());
  const int rank_in_cluster = static_cast<int>(cluster.block_rank());
  const int channels = s.channels / blocks_per_sequence;  // C
  const int width = s.delta_rank + 2 * kStates;            // R + 2n
  const int b = blockIdx.x / blocks_per_sequence, first = rank_in_cluster * channels;
  const SharedParts sm = shared_parts(shared, width, channels, s.delta_rank);
  const int tid = threadIdx.x;

  // Before the wait: the weights' slices into shared memory, constants into registers.
  const int row_vectors = channels / kVector, rank_vectors = s.delta_rank / kVector;
  for (int v = tid; v < width * row_vectors; v += kThreads) {
    const int p = v / row_vectors, k = v % row_vectors;
    copy_16_bytes(sm.x_weight + p * channels + k * kVector,
                  x_weight + static_cast<long long>(p) * s.channels + first + k * kVector);
  }
  for (int v = tid; v < channels * rank_vectors; v += kThreads) {
    const int c = v / rank_vectors, k = v % rank_vectors;
    copy_16_bytes(sm.delta_weight + c * (s.delta_rank + kRankPad) + k * kVector,
                  delta_weight + static_cast<long long>(first + c) * s.delta_rank + k * kVector);
  }
  float* h = state + (static_cast<long long>(b) * s.channels + first) * kStates;  // [C, n], contiguous
  const int state_lines = channels * kStates * static_cast<int>(sizeof(float)) / 128;
  for (int line = tid; line < state_lines; line += kThreads) prefetch_to_l2(reinterpret_cast<const char*>(h) + line * 128);
  const int items = channels * kStates / kThreads;  // ≤ kMaxItems; the same in every thread
  float a_held[kMaxItems], d_held[kMaxItems];
#pragma unroll
  for (int k = 0; k < kMaxItems; ++k) {
    const int i = tid + k * kThreads, c = i / kStates;
    a_held[k] = k < items ? A[static_cast<long long>(first) * kStates + i] : 0.f;
    d_held[k] = k < items && D ? D[first + c] : 0.f;
  }
  const bool delta_lane = tid < 2 * channels;  // step 3: lanes 2c and 2c + 1 for channel c
  const float bias = delta_lane && delta_bias ? delta_bias[first + tid / 2] : 0.f;
  wait_for_prerequisites();
  let_dependents_launch();
  // The state's loads issued now (from L2, prefetched above) and used in step 4, after the cluster's work.
  float h_held[kMaxItems];
#pragma unroll
  for (int k = 0; k < kMaxItems; ++k) h_held[k] = k < items ? h[tid + k * kThreads] : 0.f;

  for (int c = tid; c < channels; c += kThreads) {
    sm.u[c] = to_f(u[static_cast<long long>(b) * s.u_row_stride + first + c]);
    sm.z[c] = z ? to_f(z[static_cast<long long>(b) * s.z_row_stride + first + c]) : 0.f;
  }
  wait_for_copies();
  __syncthreads();

  // 1. This block's partial projection: warp w takes outputs w, w + 16, ...; lane l its vectors
  //    of channels l, l + 32, ... (a warp reads one row of the slice contiguously).
  const int warp = tid / 32, lane = tid % 32;
  for (int p = warp; p < width; p += kWarps) {
    float sum = 0.f;
    for (int k = lane; k < row_vectors; k += 32)
      sum += dot8(*reinterpret_cast<const uint4*>(sm.x_weight + p * channels + k * kVector), sm.u + k * kVector);
    sum = warp_sum(sum);
    if (lane == 0) sm.partial[p] = sum;
  }
  // 2. The cluster's sums.
  cluster.sync();
  for (int p = tid; p < width; p += kThreads) {
    float total = 0.f;
    for (int q = 0; q < blocks_per_sequence; ++q) total += cluster.map_shared_rank(sm.partial, q)[p];
    sm.projected[p] = total;
  }
  cluster_arrive();
  __syncthreads();

  // 3. Δ[c] = softplus(W_Δ[c, :] · δ + b_Δ[c]): lane 2c + half sums the vectors k ≡ half (mod 2).
  {
    const int c = tid / 2, half = tid % 2;
    float sum = 0.f;
    if (delta_lane)
      for (int k = half; k < rank_vectors; k += 2)
        sum += dot8(*reinterpret_cast<const uint4*>(sm.delta_weight + c * (s.delta_rank + kRankPad) + k * kVector),
                    sm.projected + k * kVector);
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    if (delta_lane && half == 0) sm.step[c] = softplus(sum + bias);
  }
  __syncthreads();

  // 4. The state update: item i = tid + k·kThreads is (channel i / n, state i mod n).
  const float* B_tilde = sm.projected + s.delta_rank;
  const float* C_tilde = B_tilde + kStates;
#pragma unroll
  for (int k = 0; k < kMaxItems; ++k) {
    if (k >= items) break;  // uniform over the block
    const int i = tid + k * kThreads, c = i / kStates, j = i % kStates;
    const float x = sm.u[c], step = sm.step[c];
    const float next = expf(step * a_held[k]) * h_held[k] + step * x * B_tilde[j];
    h[i] = next;
    float y = half_warp_sum(next * C_tilde[j]);
    if (j == 0) {
      y += d_held[k] * x;
      if (z) y *= silu(sm.z[c]);
      store_f(out + static_cast<long long>(b) * s.channels + first + c, y);
    }
  }
  cluster_wait();
#endif
}

void check_cuda(cudaError_t error, const char* what) {
  if (error != cudaSuccess)
    throw std::runtime_error(std::string("mixers/cuda/projected_state_update: ") + what + ": " +
                             cudaGetErrorString(error));
}

}  // namespace

bool projected_state_update_runs_here() {
  static const bool answer = clusters_run(projected_state_update_kernel);
  return answer;
}

// Clusters of 8, the portable size: 16 would need a GPC with 16 SMs free at once (E 4096, e.g.
// mamba-1.3b, keeps the two kernels).
int projected_state_update_cluster(int channels) {
  constexpr int kBlocks = 8;
  const int per_block = channels / kBlocks;
  return channels % kBlocks == 0 && per_block <= kThreads / 2 && per_block % 32 == 0 ? kBlocks : 0;
}

long long projected_state_update_shared_bytes(int channels_per_block, int delta_rank) {
  const long long width = delta_rank + 2 * kStates;
  return 2 * width * channels_per_block + 2LL * channels_per_block * (delta_rank + kRankPad) +
         4 * (2 * width + 3LL * channels_per_block);
}

void projected_state_update(const ProjectedStateUpdateShape& s, float* state, const void* u, const void* x_weight,
                            const void* delta_weight, const float* A, const float* D, const void* z,
                            const float* delta_bias, void* out, void* stream) {
  const int blocks_per_sequence = projected_state_update_cluster(s.channels);
  if (blocks_per_sequence == 0 || s.n != kStates || s.delta_rank % kVector != 0 || s.delta_rank < kVector)
    throw std::invalid_argument("mixers/cuda/projected_state_update: unsupported shape (E " +
                                std::to_string(s.channels) + ", n " + std::to_string(s.n) + ", R " +
                                std::to_string(s.delta_rank) + "); projected_state_update_supported says which");
  const long long bytes = projected_state_update_shared_bytes(s.channels / blocks_per_sequence, s.delta_rank);
  auto kernel = projected_state_update_kernel;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
             "raising the dynamic shared-memory limit");
  launch_dependent_cluster("mixers/cuda/projected_state_update", kernel,
                           dim3(static_cast<unsigned>(s.batch * blocks_per_sequence)), dim3(kThreads),
                           static_cast<size_t>(bytes), static_cast<unsigned>(blocks_per_sequence),
                           static_cast<cudaStream_t>(stream), s, state, static_cast<const bf16*>(u),
                           static_cast<const bf16*>(x_weight), static_cast<const bf16*>(delta_weight), A, D,
                           static_cast<const bf16*>(z), delta_bias, static_cast<bf16*>(out));
}

}  // namespace mixlab::cuda::detail
