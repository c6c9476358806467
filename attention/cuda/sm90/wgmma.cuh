#pragma once
// Hopper's warpgroup matrix products (PTX `wgmma.mma_async`, sm_90a), the pieces the sm90
// attention kernels are built from: shared-memory tiles in the 128-byte swizzled layout, their
// matrix descriptors, and the m64 n64 k16 bf16 product with float32 accumulators, its A operand
// from shared memory (SS) or from registers (RS).  tile_products.cu tests every piece against a
// float64 reference (tests/test_sm90_tile_products.cpp).
//
// Tiles.  A [rows x 64] bf16 tile is rows of 128 bytes; the 16-byte chunk c of row r is stored at
// chunk c ^ (r mod 8) (the "128B swizzle": 8 rows x 128 bytes form a 1,024-byte atom, and the 8
// rows of one column chunk land in 8 different bank groups).  Tiles start 1,024-byte aligned.
//
// Descriptors (PTX ISA, "Matrix Descriptor Format" of the asynchronous warpgroup-level matrix
// shared-memory layout): bits 0-13 start address >> 4, 16-29 leading-dimension byte offset >> 4,
// 32-45 stride-dimension byte offset >> 4, 49-51 base offset (0: atoms aligned), 62-63 swizzle
// (1 = 128B).
//   K-major operand (a row holds 64 consecutive k): the 8-row groups are 1,024 bytes apart
//   (stride offset); the leading offset is unused with this swizzle.  Step k16 -> +32 bytes.
//   MN-major operand (a row holds 64 consecutive m or n, rows are k): 8 k-rows make an atom,
//   atoms 1,024 bytes apart along k (stride offset); the leading offset is the distance between
//   64-wide column blocks (unused when N = 64).  Step k16 -> +16 rows = +2,048 bytes.
//
// Accumulator layout of m64nN (float32, N/2 registers per thread): warp w of the warpgroup holds
// rows 16w .. 16w+15; in n8 block j, lane l holds d[4j + 0, 1] = (row 16w + l/4, columns
// 8j + 2(l%4) + 0, 1) and d[4j + 2, 3] = (row + 8, same columns): mma.sync's m16n8 layout, once per
// warp and n8 block.  The A register fragment of m64k16 (bf16, 4 x 32 bits) is mma.sync's m16k16
// A fragment per warp, so an accumulator turns into the next product's A operand in place:
// k-step kk takes d[8kk .. 8kk+7] packed in pairs.

#include <cuda_bf16.h>
#include <cstdint>

namespace mixlab::cuda::sm90 {

// The kernel's dynamic shared memory as a Layout whose tiles start 1,024-byte aligned (the swizzle
// atom, above); the launch asks for sizeof(Layout) + 1,024 bytes.
template <class Layout>
__device__ __forceinline__ Layout& aligned_shared(unsigned char* raw) {
  return *reinterpret_cast<Layout*>((reinterpret_cast<uintptr_t>(raw) + 1023) & ~uintptr_t{1023});
}

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define MIXLAB_SM90A 1
#else
#define MIXLAB_SM90A 0
#endif

constexpr int kTileCols = 64;        // bf16 elements per 128-byte row
constexpr int kSwizzleAtom = 1024;   // bytes: 8 rows x 128

// Byte offset of element (row, col) in a swizzled [rows x 64] bf16 tile.
__host__ __device__ constexpr uint32_t swizzled_offset(int row, int col) {
  return static_cast<uint32_t>(row * 128 + (((col >> 3) ^ (row & 7)) << 4) + (col & 7) * 2);
}

__device__ __forceinline__ uint64_t descriptor_sw128(const void* smem, uint32_t leading_bytes, uint32_t stride_bytes) {
  const auto address = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  uint64_t d = 0;
  d |= static_cast<uint64_t>((address >> 4) & 0x3FFF);
  d |= static_cast<uint64_t>((leading_bytes >> 4) & 0x3FFF) << 16;
  d |= static_cast<uint64_t>((stride_bytes >> 4) & 0x3FFF) << 32;
  d |= static_cast<uint64_t>(1) << 62;  // 128-byte swizzle
  return d;
}
// K-major tile: rows are m (or n), each row 64 consecutive k.
__device__ __forceinline__ uint64_t descriptor_k_major(const void* tile) { return descriptor_sw128(tile, 16, kSwizzleAtom); }
// MN-major tile: rows are k, each row 64 consecutive n.
__device__ __forceinline__ uint64_t descriptor_mn_major(const void* tile) { return descriptor_sw128(tile, 16, kSwizzleAtom); }
// MN-major operand wider than 64 (n128: the head dim of V in O += P V at d 128): 64-wide column
// blocks, each a swizzled [rows x 64] tile, `block_bytes` apart (the leading offset).
__device__ __forceinline__ uint64_t descriptor_mn_major(const void* tile, uint32_t block_bytes) {
  return descriptor_sw128(tile, block_bytes, kSwizzleAtom);
}
// The descriptor moved by `bytes` (a multiple of 16) along its tile.
__device__ __forceinline__ uint64_t advance(uint64_t descriptor, uint32_t bytes) { return descriptor + (bytes >> 4); }

// Shared-memory writes by ordinary stores (the generic proxy) made visible to wgmma (the async
// proxy); then a barrier, then fence() before the first product.
__device__ __forceinline__ void fence_shared_to_async() {
#if MIXLAB_SM90A
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void fence() {
#if MIXLAB_SM90A
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void commit() {
#if MIXLAB_SM90A
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
template <int Pending>
__device__ __forceinline__ void wait() {
#if MIXLAB_SM90A
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(Pending) : "memory");
#endif
}
// Keeps the compiler from moving register reads or writes across an asynchronous product: an
// accumulator (float) or an A fragment (bf16 pairs) counts as used here.  Place it after the
// wait_group that completes the product, so nothing touches the registers while it is in flight.
template <int R>
__device__ __forceinline__ void fence_registers(float (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
template <int R, int C>
__device__ __forceinline__ void fence_registers(uint32_t (&a)[R][C]) {
#pragma unroll
  for (int i = 0; i < R; ++i)
#pragma unroll
    for (int j = 0; j < C; ++j) asm volatile("" : "+r"(a[i][j])::"memory");
}

#define MIXLAB_WGMMA_D32                                                                                           \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, " \
  "%24, %25, %26, %27, %28, %29, %30, %31}"
#define MIXLAB_WGMMA_D32_OPERANDS(d)                                                                            \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),    \
      "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),     \
      "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),    \
      "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])

#define MIXLAB_WGMMA_D64 \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "  \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "  \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "  \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#define MIXLAB_WGMMA_D64_OPERANDS(d) \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
  "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
  "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
  "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
  "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
  "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
  "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
  "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])

// d[64 x 64] (+)= A[64 x 16] · B[16 x 64] from shared memory.  A K-major (TransposeA = 0: rows m)
// or MN-major (1: rows k); B K-major (TransposeB = 0: the tile holds Bᵀ, rows n) or MN-major (1:
// rows k).  accumulate = 0 overwrites d.
template <int TransposeA, int TransposeB>
__device__ __forceinline__ void mma_ss(float (&d)[32], uint64_t a, uint64_t b, int accumulate) {
#if MIXLAB_SM90A
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " MIXLAB_WGMMA_D32 ", %32, %33, p, 1, 1, %35, %36;\n}\n"
      : MIXLAB_WGMMA_D32_OPERANDS(d)
      : "l"(a), "l"(b), "r"(accumulate), "n"(TransposeA), "n"(TransposeB));
#endif
}
// d[64 x 128] (+)= A[64 x 16] · B[16 x 128] from shared memory.  Accumulator layout as for n64, n8
// blocks j = 0 .. 15 (64 registers).  Both K-major (the default; A: rows m; B: the tile holds Bᵀ,
// 128 rows n, whose 8-row groups are 1,024 bytes apart as for n64): the scores of a 128-key tile.
// TransposeB = 1: B MN-major (rows k, two 64-wide column blocks; descriptor_mn_major(tile,
// block_bytes)): the backward's dK += dSᵀ Q at d 128.  TransposeA as for mma_ss.
template <int TransposeA = 0, int TransposeB = 0>
__device__ __forceinline__ void mma_ss_n128(float (&d)[64], uint64_t a, uint64_t b, int accumulate) {
#if MIXLAB_SM90A
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " MIXLAB_WGMMA_D64 ", %64, %65, p, 1, 1, %67, %68;\n}\n"
      : MIXLAB_WGMMA_D64_OPERANDS(d)
      : "l"(a), "l"(b), "r"(accumulate), "n"(TransposeA), "n"(TransposeB));
#endif
}
// The same with A from registers: a[4] is this thread's m64k16 fragment (bf16 pairs).
template <int TransposeB>
__device__ __forceinline__ void mma_rs(float (&d)[32], const uint32_t (&a)[4], uint64_t b, int accumulate) {
#if MIXLAB_SM90A
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " MIXLAB_WGMMA_D32
      ", {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"
      : MIXLAB_WGMMA_D32_OPERANDS(d)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate), "n"(TransposeB));
#endif
}

// d[64 x 128] (+)= A[64 x 16] · B[16 x 128], A from registers, B MN-major (TransposeB = 1: rows
// k, two 64-wide column blocks; descriptor_mn_major(tile, block_bytes)) or K-major (0).
template <int TransposeB>
__device__ __forceinline__ void mma_rs_n128(float (&d)[64], const uint32_t (&a)[4], uint64_t b, int accumulate) {
#if MIXLAB_SM90A
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " MIXLAB_WGMMA_D64
      ", {%64, %65, %66, %67}, %68, p, 1, 1, %70;\n}\n"
      : MIXLAB_WGMMA_D64_OPERANDS(d)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate), "n"(TransposeB));
#endif
}

// Two floats as one register of bf16 (low half = first).
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}
// The A fragment of k-step kk (k = 16kk .. 16kk+15) from an m64n64 or m64n128 accumulator (see
// the header).
template <int R>
__device__ __forceinline__ void accumulator_to_a(const float (&d)[R], int kk, uint32_t (&a)[4]) {
  a[0] = pack_bf16(d[8 * kk + 0], d[8 * kk + 1]);
  a[1] = pack_bf16(d[8 * kk + 2], d[8 * kk + 3]);
  a[2] = pack_bf16(d[8 * kk + 4], d[8 * kk + 5]);
  a[3] = pack_bf16(d[8 * kk + 6], d[8 * kk + 7]);
}

}  // namespace mixlab::cuda::sm90
