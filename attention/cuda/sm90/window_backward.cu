// The kernel of window_backward.h: a block per 64 keys runs key_block_backward.cuh over the query
// tiles that see them, with the sliding window's visibility (t − W < key ≤ t, both below N).

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

// grid (⌈N / 64⌉, B·H), 128 threads, sizeof(KeyBlockSmem) + 1,024 bytes of dynamic shared memory.
// Block: keys [k0, k0 + 64); the query tiles whose rows see one of them: queries
// [k0, min(N, k0 + 64 + W − 1)).
__global__ void __launch_bounds__(kBackwardThreads) window_backward_kernel(
    WindowBackwardShape shape, const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
    const __nv_bfloat16* __restrict__ v, const __nv_bfloat16* __restrict__ dout, const float* __restrict__ lse,
    const float* __restrict__ delta, float* __restrict__ dq_accumulator, __nv_bfloat16* __restrict__ dk,
    __nv_bfloat16* __restrict__ dv) {
#if MIXLAB_SM90A
  extern __shared__ unsigned char smem_raw[];
  auto& sm = *reinterpret_cast<KeyBlockSmem*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  const int n = shape.n, window = shape.window, k0 = blockIdx.x * kBackwardBlock;
  const size_t head = static_cast<size_t>(blockIdx.y) * n * 64, rows = static_cast<size_t>(blockIdx.y) * n;
  const QuerySide side{q + head, dout + head, lse + rows, delta + rows,
                       dq_accumulator + static_cast<size_t>(blockIdx.y) * shape.n_padded * 64, n};
  load_tile<kBackwardThreads>(sm.k, k + head + static_cast<size_t>(k0) * 64, kBackwardBlock, n - k0);
  load_tile<kBackwardThreads>(sm.v, v + head + static_cast<size_t>(k0) * 64, kBackwardBlock, n - k0);
  const int first = k0 / kBackwardBlock, last = (min(n, k0 + kBackwardBlock + window - 1) - 1) / kBackwardBlock;
  float dv_acc[32], dk_acc[32];
  key_block_backward(
      sm, side, first, last, shape.scale,
      [&](int key, int t) { return k0 + key <= t && k0 + key > t - window && t < n && k0 + key < n; },
      [&](int q0) {
        return k0 + kBackwardBlock - 1 <= q0 && q0 + kBackwardBlock - 1 - window < k0 && q0 + kBackwardBlock <= n &&
               k0 + kBackwardBlock <= n;
      },
      dv_acc, dk_acc);
  store_key_gradients(dv_acc, dk_acc, shape.scale, n - k0, dv + head + static_cast<size_t>(k0) * 64,
                      dk + head + static_cast<size_t>(k0) * 64);
#else
  __trap();  // built without sm_90a: window_backward() refuses to launch
#endif
}

}  // namespace

void window_backward(const WindowBackwardShape& shape, const void* q, const void* k, const void* v, const void* dout,
                     const float* lse, const float* delta, float* dq_accumulator, void* dk, void* dv, void* stream) {
  if (shape.batch_heads < 1 || shape.n < 1 || shape.window < 1 || shape.n_padded < (shape.n + 63) / 64 * 64)
    throw std::invalid_argument("attention/cuda/sm90/window_backward: needs B·H, N, W ≥ 1 and the dQ accumulator's "
                                "rows N rounded up to 64 (got " + std::to_string(shape.batch_heads) + ", " +
                                std::to_string(shape.n) + ", " + std::to_string(shape.window) + ", " +
                                std::to_string(shape.n_padded) + ")");
  const dim3 grid((shape.n + kBackwardBlock - 1) / kBackwardBlock, shape.batch_heads);
  const size_t shared_bytes = sizeof(KeyBlockSmem) + 1024;  // + room to align the tiles to 1,024 bytes
  launch("window_backward", window_backward_kernel, grid, kBackwardThreads, shared_bytes, stream,
         shape, static_cast<const __nv_bfloat16*>(q), static_cast<const __nv_bfloat16*>(k),
         static_cast<const __nv_bfloat16*>(v), static_cast<const __nv_bfloat16*>(dout), lse, delta,
         dq_accumulator, static_cast<__nv_bfloat16*>(dk), static_cast<__nv_bfloat16*>(dv));
}

}  // namespace mixlab::cuda::sm90
