#pragma once
// Tensor-core building blocks shared by the attention kernels (sm_80+ instructions, run on sm_90a):
//   mma.sync m16n8k16 (bf16 or fp16 operands, fp32 accumulators), ldmatrix (plain and transposed),
//   cp.async 16-byte copies with zero fill, and an XOR-swizzled [rows x HD] shared-memory tile.
//
// Fragment layouts of m16n8k16 (g = lane / 4, c = lane % 4):
//   A (16x16, row major)  a0: (g, 2c..2c+1)  a1: (g+8, 2c..)  a2: (g, 2c+8..)  a3: (g+8, 2c+8..)
//   B (16x8,  k x n)      b0: (k=2c..2c+1, n=g)  b1: (k=2c+8.., n=g)
//   C (16x8,  fp32)       c0,c1: (g, 2c..2c+1)   c2,c3: (g+8, 2c..2c+1)
// A C tile pair (two adjacent n8 tiles) converted to 16-bit is exactly the A fragment of the next
// product, which is how P (or dS) feeds P·V (or dS·K) without a trip through shared memory.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>

namespace mixlab::cuda::tiles {

template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  if constexpr (sizeof(T) == 2 && std::is_same_v<T, __nv_bfloat16>) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  } else {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
}

template <class T>
__device__ __forceinline__ float to_float(T x) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return __bfloat162float(x);
  else return __half2float(x);
}
template <class T>
__device__ __forceinline__ T from_float(float x) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return __float2bfloat16_rn(x);
  else return __float2half_rn(x);
}

// d += a · b  (16x8x16)
template <class T>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem) {
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem) {
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// 16-byte global -> shared copy; copies zeros when !valid.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  const int bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(gmem), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::); }

// Offset of element (row, col) in a [rows x HD] 16-bit tile whose 16-byte chunks are XOR-swizzled
// with the row, so that the 8 row addresses of one ldmatrix hit 8 different bank groups.
template <int HD>
__device__ __forceinline__ int swz(int row, int col) {
  return row * HD + ((((col >> 3) ^ (row & 7))) << 3) + (col & 7);
}

// Copy rows [row0, row0 + ROWS) of an [n_rows, HD] matrix whose rows start row_stride elements
// apart (a multiple of 8, so each 16-byte chunk is aligned) into a swizzled tile; rows outside
// [0, n_rows) become zeros.
template <int HD, int ROWS, int NTHREADS, class T>
__device__ __forceinline__ void load_tile(T* tile, const T* matrix, int row0, int n_rows, int row_stride) {
  constexpr int CHUNKS = HD / 8, STEP = NTHREADS / CHUNKS;  // a thread's chunks lie STEP rows apart
  static_assert(NTHREADS % CHUNKS == 0, "load_tile: the threads must cover whole rows");
  const int ch = threadIdx.x % CHUNKS;
  const T* p = matrix + static_cast<int64_t>(row0 + static_cast<int>(threadIdx.x) / CHUNKS) * row_stride + ch * 8;
#pragma unroll
  for (int r = threadIdx.x / CHUNKS; r < ROWS; r += STEP, p += static_cast<int64_t>(STEP) * row_stride) {
    const int gr = row0 + r;
    const bool valid = gr >= 0 && gr < n_rows;
    cp_async16(tile + swz<HD>(r, ch * 8), valid ? p : matrix, valid);
  }
}

// A fragment of the 16x16 block at (row0, col0) of a swizzled tile (rows = the M dimension).
template <int HD, class T>
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const T* tile, int row0, int col0) {
  const int l = threadIdx.x & 31;
  ldmatrix_x4(a, tile + swz<HD>(row0 + (l & 7) + ((l >> 3) & 1) * 8, col0 + (l >> 4) * 8));
}
// B fragments (two n8 tiles) where the tile stores B transposed, i.e. rows = n, cols = k:
// b[0], b[1] for n rows n0..n0+7 and b[2], b[3] for n0+8..n0+15, k = k0..k0+15.
template <int HD, class T>
__device__ __forceinline__ void load_b_nk(uint32_t (&b)[4], const T* tile, int n0, int k0) {
  const int l = threadIdx.x & 31;
  ldmatrix_x4(b, tile + swz<HD>(n0 + (l & 7) + (l >> 4) * 8, k0 + ((l >> 3) & 1) * 8));
}
// B fragments (two n8 tiles) where the tile stores B as is, rows = k, cols = n:
// b[0], b[1] for n = n0..n0+7 and b[2], b[3] for n0+8..n0+15, k = k0..k0+15.
template <int HD, class T>
__device__ __forceinline__ void load_b_kn(uint32_t (&b)[4], const T* tile, int k0, int n0) {
  const int l = threadIdx.x & 31;
  ldmatrix_x4_trans(b, tile + swz<HD>(k0 + (l & 7) + ((l >> 3) & 1) * 8, n0 + (l >> 4) * 8));
}

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

}  // namespace mixlab::cuda::tiles
