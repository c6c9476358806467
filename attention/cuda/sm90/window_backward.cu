// The kernel of window_backward.h, head dim D = 64 or 128: a block per 128 keys runs
// key_block_backward.cuh (a producer warpgroup streaming the query tiles that see them, two consumer
// warpgroups of 64 keys) with the sliding window's visibility (t − W < key ≤ t, both below N).

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "attention/cuda/sm90/launch.cuh"
#include "attention/cuda/sm90/key_block_backward.cuh"
#include "attention/cuda/sm90/window_backward.h"

namespace mixlab::cuda::sm90 {
namespace {

#if MIXLAB_SM90A
// The visible queries of a consumer warpgroup's keys j = key0 + row (row: 0 .. 63): t with
// j ≤ t ≤ j + W − 1 and t < N, none for j ≥ N; per tile at q0, columns [lo, hi).
struct WindowKeyMask {
  int n, window, key0, row0;  // row0: the thread's first key row (r; the other is r + 8)
  // Some pair of the tile is hidden: the diagonal, the window's far edge or N cuts it.
  __device__ bool edge(int q0) const {
    return key0 + kBackwardTile - 1 > q0 || q0 + kBackwardTile - 1 > key0 + window - 1 || q0 + kBackwardTile > n ||
           key0 + kBackwardTile > n;
  }
  __device__ void columns(int q0, int h, int& lo, int& hi) const {
    const int j = key0 + row0 + 8 * h;
    lo = j - q0;
    hi = j < n ? min(j + window - 1, n - 1) + 1 - q0 : lo;
  }
};
#endif

// grid (⌈N / 128⌉, B·H), kBackwardThreads (384), sizeof(KeyBlockSmem<D>) + 1,024 bytes of dynamic
// shared memory.  Block: keys [k0, k0 + 128); the query tiles whose rows see one of them: queries
// [k0, min(N, k0 + 128 + W − 1)); consumer warpgroup wg: keys [kw, kw + 64), kw = k0 + 64 wg, and
// the tiles of queries [kw, min(N, kw + 64 + W − 1)) (none when kw ≥ N).
template <int D>
__global__ void __launch_bounds__(kBackwardThreads, 1) window_backward_kernel(
    WindowBackwardShape shape, const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
    const __nv_bfloat16* __restrict__ v, const __nv_bfloat16* __restrict__ dout, const float* __restrict__ lse,
    const float* __restrict__ delta, float* __restrict__ dq_accumulator, __nv_bfloat16* __restrict__ dk,
    __nv_bfloat16* __restrict__ dv) {
#if MIXLAB_SM90A
  extern __shared__ unsigned char smem_raw[];
  auto& sm = aligned_shared<KeyBlockSmem<D>>(smem_raw);
  const int n = shape.n, window = shape.window, k0 = blockIdx.x * kBackwardBlock;
  const size_t head = static_cast<size_t>(blockIdx.y) * n * D, rows = static_cast<size_t>(blockIdx.y) * n;
  const QuerySide side{q + head, dout + head, lse + rows, delta + rows,
                       dq_accumulator + static_cast<size_t>(blockIdx.y) * (D / 64) * shape.n_padded * 64, n,
                       shape.n_padded};
  const int first = k0 / kBackwardTile, last = (min(n, k0 + kBackwardBlock + window - 1) - 1) / kBackwardTile;
  const int tiles = last - first + 1;

  if (threadIdx.x == 0) init_stages(sm.ring);
  __syncthreads();  // the barriers are initialised (the last block-wide barrier: the roles part here)
  if (threadIdx.x >= kProducerThread0) {
    backward_producer_registers<D>();
    produce_queries(sm, side, first, tiles);
    return;
  }
  backward_consumer_registers<D>();
  const int wg = threadIdx.x / 128, kw = k0 + kBackwardTile * wg;
  const size_t key_rows = head + (kw < n ? static_cast<size_t>(kw) * D : 0);  // past N: zero-filled, nothing read
  load_key_tiles(sm, wg, k + key_rows, v + key_rows, n - kw, D);
  const int begin = kw / kBackwardTile - first;
  const int end = kw < n ? (min(n, kw + kBackwardTile + window - 1) - 1) / kBackwardTile - first + 1 : 0;
  const int row0 = 16 * ((threadIdx.x % 128) / 32) + threadIdx.x % 32 / 4;
  float dv_acc[D / 2], dk_acc[D / 2];
  key_block_backward(sm, side, wg, first, begin, end, tiles, shape.scale, WindowKeyMask{n, window, kw, row0}, dv_acc,
                     dk_acc);
  store_key_gradients<D>(dv_acc, dk_acc, shape.scale, n - kw, dv + head + static_cast<size_t>(kw) * D,
                         dk + head + static_cast<size_t>(kw) * D);
#else
  __trap();  // built without sm_90a: window_backward() refuses to launch
#endif
}

}  // namespace

void window_backward(const WindowBackwardShape& shape, const void* q, const void* k, const void* v, const void* dout,
                     const float* lse, const float* delta, float* dq_accumulator, void* dk, void* dv, void* stream) {
  if (shape.batch_heads < 1 || shape.n < 1 || shape.window < 1 || shape.n_padded < (shape.n + 63) / 64 * 64 ||
      (shape.head_dim != 64 && shape.head_dim != 128))
    throw std::invalid_argument("attention/cuda/sm90/window_backward: needs B·H, N, W ≥ 1, the dQ accumulator's "
                                "rows N rounded up to 64 and head dim 64 or 128 (got " +
                                std::to_string(shape.batch_heads) + ", " + std::to_string(shape.n) + ", " +
                                std::to_string(shape.window) + ", " + std::to_string(shape.n_padded) + ", " +
                                std::to_string(shape.head_dim) + ")");
  const dim3 grid((shape.n + kBackwardBlock - 1) / kBackwardBlock, shape.batch_heads);
  auto run = [&](auto kernel, size_t smem_bytes) {
    launch("window_backward", kernel, grid, kBackwardThreads, smem_bytes + 1024, stream,  // + room to align to 1,024
           shape, static_cast<const __nv_bfloat16*>(q), static_cast<const __nv_bfloat16*>(k),
           static_cast<const __nv_bfloat16*>(v), static_cast<const __nv_bfloat16*>(dout), lse, delta,
           dq_accumulator, static_cast<__nv_bfloat16*>(dk), static_cast<__nv_bfloat16*>(dv));
  };
  if (shape.head_dim == 64)
    run(window_backward_kernel<64>, sizeof(KeyBlockSmem<64>));
  else
    run(window_backward_kernel<128>, sizeof(KeyBlockSmem<128>));
}

}  // namespace mixlab::cuda::sm90
