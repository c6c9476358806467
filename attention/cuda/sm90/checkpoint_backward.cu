// The kernels of checkpoint_backward.h, head dim D = 64 or 128.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "attention/cuda/mma_tiles.cuh"
#include "attention/cuda/sm90/checkpoint_backward.h"
#include "attention/cuda/sm90/key_block_backward.cuh"
#include "attention/cuda/sm90/launch.cuh"

namespace mixlab::cuda::sm90 {
namespace {

#if MIXLAB_SM90A
// The visible queries of a consumer warpgroup's checkpoints c = key0 + row (row: 0 .. 63): t with
// c < ⌊t / S⌋, i.e. (c + 1)·S ≤ t < N, none for c ≥ C; per tile at q0, columns [lo, hi).
struct CheckpointKeyMask {
  int n, segment, count, key0, row0;  // row0: the thread's first key row (r; the other is r + 8)
  // Some pair of the tile is hidden: the warpgroup's last checkpoint or N cuts it (the product
  // (key0 + 64)·S only where key0 + 64 ≤ C, so at most N).
  __device__ bool edge(int q0) const {
    return key0 + kBackwardTile > count || (key0 + kBackwardTile) * segment > q0 || q0 + kBackwardTile > n;
  }
  __device__ void columns(int q0, int h, int& lo, int& hi) const {
    const int c = key0 + row0 + 8 * h;
    lo = (min(c, count) + 1) * segment - q0;  // ≤ N + S: no overflow
    hi = c < count ? n - q0 : lo;
  }
};
#endif

// grid (⌈C / 128⌉, B·H), kBackwardThreads (384), sizeof(KeyBlockSmem<D>) + 1,024 bytes of dynamic
// shared memory.  Block: checkpoints [c0, c0 + 128), the key rows c·S + S − 1; the query tiles from
// the first query that sees c0, (c0 + 1)·S, to N (none when that is N); consumer warpgroup wg:
// checkpoints [cw, cw + 64), cw = c0 + 64 wg, and the tiles from (cw + 1)·S (none when cw ≥ C).
template <int D>
__global__ void __launch_bounds__(kBackwardThreads, 1) checkpoint_keys_backward_kernel(
    CheckpointBackwardShape shape, const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
    const __nv_bfloat16* __restrict__ v, const __nv_bfloat16* __restrict__ dout, const float* __restrict__ lse,
    const float* __restrict__ delta, float* __restrict__ dq_accumulator, float* __restrict__ checkpoint_dk,
    float* __restrict__ checkpoint_dv) {
#if MIXLAB_SM90A
  extern __shared__ unsigned char smem_raw[];
  auto& sm = aligned_shared<KeyBlockSmem<D>>(smem_raw);
  const int n = shape.n, segment = shape.segment, count = shape.checkpoints, c0 = blockIdx.x * kBackwardBlock;
  const size_t head = static_cast<size_t>(blockIdx.y) * n * D, rows = static_cast<size_t>(blockIdx.y) * n;
  const QuerySide side{q + head, dout + head, lse + rows, delta + rows,
                       dq_accumulator + static_cast<size_t>(blockIdx.y) * (D / 64) * shape.n_padded * 64, n,
                       shape.n_padded};
  // c0 < C, so (c0 + 1)·S ≤ C·S ≤ N.
  const int first = (c0 + 1) * segment / kBackwardTile, tiles = max(0, (n - 1) / kBackwardTile - first + 1);

  if (threadIdx.x == 0) init_stages(sm.ring);
  __syncthreads();  // the barriers are initialised (the last block-wide barrier: the roles part here)
  if (threadIdx.x >= kProducerThread0) {
    backward_producer_registers<D>();
    produce_queries(sm, side, first, tiles);
    return;
  }
  backward_consumer_registers<D>();
  const int wg = threadIdx.x / 128, cw = c0 + kBackwardTile * wg;
  const size_t first_row = (static_cast<size_t>(cw) * segment + segment - 1) * D;
  const size_t stride = static_cast<size_t>(segment) * D;
  const bool rows_inside = cw < count;  // else nothing is read: the tiles are zero-filled
  load_key_tiles(sm, wg, k + head + (rows_inside ? first_row : 0), v + head + (rows_inside ? first_row : 0),
                 count - cw, stride);
  const int begin = rows_inside ? (cw + 1) * segment / kBackwardTile - first : 0;
  const int end = rows_inside ? tiles : 0;
  const int row0 = 16 * ((threadIdx.x % 128) / 32) + threadIdx.x % 32 / 4;
  float dv_acc[D / 2], dk_acc[D / 2];
  key_block_backward(sm, side, wg, first, begin, end, tiles, shape.scale,
                     CheckpointKeyMask{n, segment, count, cw, row0}, dv_acc, dk_acc);
  const size_t compact = (static_cast<size_t>(blockIdx.y) * shape.c_padded + cw) * D;
  store_key_gradients<D>(dv_acc, dk_acc, shape.scale, count - cw, checkpoint_dv + compact, checkpoint_dk + compact);
#else
  __trap();  // built without sm_90a: checkpoint_backward() refuses to launch
#endif
}

// grid (⌈N / 8⌉, B·H), 256 threads: a warp per token t; lane l holds the dimension pairs
// 64b + 2l, + 1 for the column blocks b < D / 64 (the dQ accumulator's halves).
template <int D>
__global__ void __launch_bounds__(256) checkpoint_self_backward_kernel(
    CheckpointBackwardShape shape, const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
    const __nv_bfloat16* __restrict__ v, const __nv_bfloat16* __restrict__ dout, const float* __restrict__ lse,
    const float* __restrict__ delta, const float* __restrict__ dq_accumulator, const float* __restrict__ checkpoint_dk,
    const float* __restrict__ checkpoint_dv, __nv_bfloat16* __restrict__ dq, __nv_bfloat16* __restrict__ dk,
    __nv_bfloat16* __restrict__ dv) {
  constexpr int kBlocks = D / 64;
  const int t = blockIdx.x * 8 + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (t >= shape.n) return;
  const size_t row = static_cast<size_t>(blockIdx.y) * shape.n + t, at0 = row * D + 2 * lane;
  auto pair = [&](const __nv_bfloat16* m, int b) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(m + at0 + 64 * b));
  };
  float2 qq[kBlocks], kk[kBlocks], vv[kBlocks], go[kBlocks];
  float qk = 0.f, ov = 0.f;  // the lane's parts of q_t·k_t and dO_t·v_t
#pragma unroll
  for (int b = 0; b < kBlocks; ++b) {
    qq[b] = pair(q, b), kk[b] = pair(k, b), vv[b] = pair(v, b), go[b] = pair(dout, b);
    qk += qq[b].x * kk[b].x + qq[b].y * kk[b].y;
    ov += go[b].x * vv[b].x + go[b].y * vv[b].y;
  }
  auto warp_sum = [](float x) {
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
    return x;
  };
  const float p = __expf(warp_sum(qk) * shape.scale - lse[row]);  // P_tt
  const float ds = p * (warp_sum(ov) - delta[row]);               // dS_tt
  const bool checkpoint = t % shape.segment == shape.segment - 1;  // then add its compact rows
  const size_t c = (static_cast<size_t>(blockIdx.y) * shape.c_padded + t / shape.segment) * D + 2 * lane;
#pragma unroll
  for (int b = 0; b < kBlocks; ++b) {
    float2 dk2 = make_float2(shape.scale * ds * qq[b].x, shape.scale * ds * qq[b].y);
    float2 dv2 = make_float2(p * go[b].x, p * go[b].y);
    if (checkpoint) {
      dk2.x += checkpoint_dk[c + 64 * b]; dk2.y += checkpoint_dk[c + 64 * b + 1];
      dv2.x += checkpoint_dv[c + 64 * b]; dv2.y += checkpoint_dv[c + 64 * b + 1];
    }
    const size_t acc = ((static_cast<size_t>(blockIdx.y) * kBlocks + b) * shape.n_padded + t) * 64 + 2 * lane;
    const float2 dq2 = make_float2(shape.scale * (dq_accumulator[acc] + ds * kk[b].x),
                                   shape.scale * (dq_accumulator[acc + 1] + ds * kk[b].y));
    const size_t at = at0 + 64 * b;
    *reinterpret_cast<__nv_bfloat162*>(dq + at) = __float22bfloat162_rn(dq2);
    *reinterpret_cast<__nv_bfloat162*>(dk + at) = __float22bfloat162_rn(dk2);
    *reinterpret_cast<__nv_bfloat162*>(dv + at) = __float22bfloat162_rn(dv2);
  }
}

// The two kernels at head dim D.
template <int D>
void checkpoint_backward_at(const CheckpointBackwardShape& shape, const __nv_bfloat16* q, const __nv_bfloat16* k,
                            const __nv_bfloat16* v, const __nv_bfloat16* dout, const float* lse, const float* delta,
                            float* dq_accumulator, float* checkpoint_dk, float* checkpoint_dv, void* dq, void* dk,
                            void* dv, void* stream) {
  if (shape.checkpoints > 0) {
    const dim3 grid((shape.checkpoints + kBackwardBlock - 1) / kBackwardBlock, shape.batch_heads);
    const size_t shared_bytes = sizeof(KeyBlockSmem<D>) + 1024;  // + room to align the tiles to 1,024 bytes
    launch("checkpoint_backward", checkpoint_keys_backward_kernel<D>, grid, kBackwardThreads, shared_bytes, stream,
           shape, q, k, v, dout, lse, delta, dq_accumulator, checkpoint_dk, checkpoint_dv);
  }
  const dim3 grid((shape.n + 7) / 8, shape.batch_heads);
  launch("checkpoint_backward (self pairs)", checkpoint_self_backward_kernel<D>, grid, 256, 0, stream, shape, q, k, v,
         dout, lse, delta, static_cast<const float*>(dq_accumulator), static_cast<const float*>(checkpoint_dk),
         static_cast<const float*>(checkpoint_dv), static_cast<__nv_bfloat16*>(dq), static_cast<__nv_bfloat16*>(dk),
         static_cast<__nv_bfloat16*>(dv));
}

}  // namespace

void checkpoint_backward(const CheckpointBackwardShape& shape, const void* q, const void* k, const void* v,
                         const void* dout, const float* lse, const float* delta, float* dq_accumulator,
                         float* checkpoint_dk, float* checkpoint_dv, void* dq, void* dk, void* dv, void* stream) {
  if (shape.batch_heads < 1 || shape.n < 1 || shape.segment < 1 || shape.checkpoints != shape.n / shape.segment ||
      shape.n_padded < (shape.n + 63) / 64 * 64 || shape.c_padded < (shape.checkpoints + 63) / 64 * 64 ||
      (shape.head_dim != 64 && shape.head_dim != 128))
    throw std::invalid_argument("attention/cuda/sm90/checkpoint_backward: needs B·H, N, S ≥ 1, C = ⌊N / S⌋, the "
                                "scratch rows rounded up to 64 and head dim 64 or 128 (got " +
                                std::to_string(shape.batch_heads) + ", " + std::to_string(shape.n) + ", " +
                                std::to_string(shape.segment) + ", " + std::to_string(shape.checkpoints) + ", " +
                                std::to_string(shape.head_dim) + ")");
  const auto* q_ = static_cast<const __nv_bfloat16*>(q);
  const auto* k_ = static_cast<const __nv_bfloat16*>(k);
  const auto* v_ = static_cast<const __nv_bfloat16*>(v);
  const auto* dout_ = static_cast<const __nv_bfloat16*>(dout);
  if (shape.head_dim == 64)
    checkpoint_backward_at<64>(shape, q_, k_, v_, dout_, lse, delta, dq_accumulator, checkpoint_dk, checkpoint_dv, dq,
                               dk, dv, stream);
  else
    checkpoint_backward_at<128>(shape, q_, k_, v_, dout_, lse, delta, dq_accumulator, checkpoint_dk, checkpoint_dv,
                                dq, dk, dv, stream);
}

}  // namespace mixlab::cuda::sm90
