#pragma once
// Staging global rows into the swizzled shared-memory tiles of wgmma.cuh with cp.async (the sm_80
// tree's copies, attention/cuda/mma_tiles.cuh), and the waits and bulk reductions the sm90
// kernels share.

#include <cuda_bf16.h>
#include <cstdint>

#include "attention/cuda/mma_tiles.cuh"
#include "attention/cuda/sm90/wgmma.cuh"

namespace mixlab::cuda::sm90 {

#if MIXLAB_SM90A
// Rows [0, rows) of a [rows x 64] bf16 matrix whose rows are `row_stride` elements apart (64: a
// contiguous matrix; S·64: every S-th token) into a swizzled tile, 16 bytes per copy, by `Threads`
// threads; rows at or past `valid` are zero-filled.
// `thread` is the caller's index among those Threads (threadIdx.x when the whole block copies).
template <int Threads>
__device__ __forceinline__ void load_tile_by(int thread, unsigned char* tile, const __nv_bfloat16* rows_start, int rows,
                                             int valid, size_t row_stride = kTileCols) {
  for (int i = thread; i < rows * 8; i += Threads) {
    const int r = i / 8, c = i % 8;
    const bool inside = r < valid;
    tiles::cp_async16(tile + swizzled_offset(r, 8 * c), rows_start + (inside ? r * row_stride + 8 * c : 0), inside);
  }
}
template <int Threads>
__device__ __forceinline__ void load_tile(unsigned char* tile, const __nv_bfloat16* rows_start, int rows, int valid,
                                          size_t row_stride = kTileCols) {
  load_tile_by<Threads>(threadIdx.x, tile, rows_start, rows, valid, row_stride);
}
// The same by the 128 threads of a warpgroup, unrolled: thread t copies chunk c = t mod 8 of rows
// r0 + 16·it (r0 = t / 8), which all share (r mod 8) = r0 mod 8, so the chunk lands at the same
// swizzled column in each: one destination per thread, 2,048 bytes apart per step.
template <int Rows>
__device__ __forceinline__ void load_tile_warpgroup(int thread, unsigned char* tile, const __nv_bfloat16* rows_start,
                                                    int valid, size_t row_stride = kTileCols) {
  static_assert(Rows % 16 == 0, "sixteen rows per warpgroup-wide copy");
  const int c = thread % 8, r0 = thread / 8;
  const __nv_bfloat16* src = rows_start + r0 * row_stride + 8 * c;
  unsigned char* dst = tile + swizzled_offset(r0, 8 * c);
  const size_t step = 16 * row_stride;
#pragma unroll
  for (int it = 0; it < Rows / 16; ++it, src += step) {
    const bool inside = r0 + 16 * it < valid;
    tiles::cp_async16(dst + 2048 * it, inside ? src : rows_start, inside);
  }
}
// One float into shared memory by cp.async (4 bytes); a zero where !inside (src is not read).
__device__ __forceinline__ void load_float(float* dst, const float* src, bool inside) {
  const auto addr = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(addr), "l"(src), "r"(inside ? 4 : 0));
}
// A [Rows x D] bf16 tile (D a multiple of 64; source rows `row_stride` elements apart) as D / 64
// swizzled [Rows x 64] column blocks, Rows · 128 bytes apart, by the 128 threads of a warpgroup.
template <int Rows, int D>
__device__ __forceinline__ void load_wide_tile_warpgroup(int thread, unsigned char* tile,
                                                         const __nv_bfloat16* rows_start, int valid,
                                                         size_t row_stride) {
  static_assert(D % kTileCols == 0, "whole 64-column blocks");
#pragma unroll
  for (int b = 0; b < D / kTileCols; ++b)
    load_tile_warpgroup<Rows>(thread, tile + b * Rows * 128, rows_start + b * kTileCols, valid, row_stride);
}
// values [0, count) of a float vector into shared memory, 4 bytes per copy; past `valid` zeros.
__device__ __forceinline__ void load_floats(float* dst, const float* src, int count, int valid) {
  for (int i = threadIdx.x; i < count; i += blockDim.x) load_float(dst + i, src + (i < valid ? i : 0), i < valid);
}
using tiles::cp_async_commit;
// With a memory clobber: the proxy fence and the barrier after it must see the tile in place.
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

// global[0, bytes/4) += shared[0, bytes/4) (float32) by the bulk-copy engine, asynchronously; the
// caller fences the shared writes first (fence_shared_to_async) and waits before reusing them.
__device__ __forceinline__ void bulk_add_f32(float* global, const float* shared, uint32_t bytes) {
  const auto addr = static_cast<uint32_t>(__cvta_generic_to_shared(shared));
  asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(global),
               "r"(addr), "r"(bytes)
               : "memory");
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
}
// Until the bulk operations issued by this thread have read their shared-memory source.
__device__ __forceinline__ void bulk_wait_read() { asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory"); }
// Until they are complete.
__device__ __forceinline__ void bulk_wait() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }
#endif

}  // namespace mixlab::cuda::sm90
