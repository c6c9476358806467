#pragma once
// A linear layer on a few rows, the products of a decode step (issue 13: at batch 16 cuBLAS's
// skinny products read the weights at about 1 TB/s, a quarter of the copy bandwidth, and they were
// the largest share of a step):
//
//   y[m, o] = Σ_k x[m, k] · W[o, k]  (+ b[o])        x: [rows, in],  W: [out, in],  y: [rows, out]
//
// The kernel, with the store of y as a template parameter (an epilogue: y rounded to bf16 with the
// bias added in core/cuda/skinny_linear.cu; a fused step in mixers/cuda/).  The reference is
// at::linear (core/skinny_linear.h); tests/test_skinny_linear.cpp holds the two together against a
// float64 product.
//
// Tensor cores with x as the 16-row A operand.  mma.sync m16n8k16 multiplies A [16 × 16] by
// B [16 × 8]; here A = 16 rows of x, B = 8 rows of W transposed (W[o, k] is B[k, o] in the "col"
// layout the instruction takes), C = y[16 rows, 8 outputs].  A thread of a warp (group g = lane/4,
// t = lane%4) holds A at rows g, g + 8 and k slots {2t, 2t+1, 2t+8, 2t+9}, B at the same k slots
// of column g.  Any bijection of k applied to A and B alike leaves Σ_k unchanged, so thread (g, t)
// loads 8 consecutive k of one 32-wide chunk with one 16-byte load each of x and W:
//   physical k = 8t + 0..3  ->  the first mma's slots 2t, 2t+1, 2t+8, 2t+9
//   physical k = 8t + 4..7  ->  the second mma's slots
// which reads W rows as 64 contiguous bytes per chunk instead of 4-byte pieces.
//
// Work: a block owns 8·kTiles outputs and 16 rows of x (blockIdx.y); its kWarps warps split k in
// super-chunks of 128 (warp w takes super-chunks w, w + kWarps, ...; each thread 16-byte loads of
// W, 4 per tile, 256 contiguous bytes per W row and warp), then sum their partial tiles through
// shared memory.  W is read once, streamed past L1, a super-chunk ahead of its products (the first
// one before the wait for x's kernel: a programmatic dependent launch); x (a few KB) is re-read from
// L1/L2 by every block.  Arithmetic in float32, y rounded to bf16 once.  A block has 8 warps, or 16
// where in has more than 8 super-chunks (in > 1024): then each warp's first super-chunk, read
// before the wait, is all of W it reads up to in = 2048, and no DRAM trip is left after the wait.
//
// With a norm (kNormed: the shape's norm_weight g, core/input_norm.h) x's rows are RMS-normalised
// in the product: each thread multiplies its 8 k of x by g as it loads them (the A operand is
// bf16(x·g)) and sums their squares; the block adds those per row over its lanes and warps, and
// the sums are scaled by rsqrt(Σ_k x² / in + eps) before the epilogue sees them.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "core/ab_switch.h"
#include "core/cuda/dependent_launch.cuh"
#include "core/cuda/skinny_linear_launch.h"

namespace mixlab::cuda::detail {
namespace skinny {

constexpr int kSkinnyWarps = 8;       // warps of a block where in <= 8 super-chunks
constexpr int kSkinnyWideWarps = 16;  // where in is longer
constexpr int kChunks = 4;              // 32-wide k chunks per super-chunk
constexpr int kSuper = 32 * kChunks;    // k per super-chunk
constexpr int kRowsPerBlock = 16;       // the mma's M

// 16 bytes of W, read once: not kept in L1.
__device__ __forceinline__ uint4 load_streamed(const __nv_bfloat16* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

// c += A·B for one m16n8k16 tile (bf16 inputs, float32 accumulators).
__device__ __forceinline__ void mma_16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                          uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Whether an epilogue takes W's rows in pairs (`static constexpr bool kPairsTiles = true`): W's rows
// come in blocks of 16, the first 8 of a block paired with the next 8, and the epilogue is called
// once per pair p = 8·block + j (W rows 16·block + j and 16·block + 8 + j) with both sums.
template <typename Epilogue, typename = void>
struct PairsTiles : std::false_type {};
template <typename Epilogue>
struct PairsTiles<Epilogue, std::void_t<decltype(Epilogue::kPairsTiles)>> : std::bool_constant<Epilogue::kPairsTiles> {};

// The 8 bf16 of `x` multiplied by the 8 of `g` (rounded to bf16), their squares added to `squares`.
__device__ __forceinline__ uint4 scale_and_square(uint4 x, uint4 g, float& squares) {
  uint32_t (&xs)[4] = reinterpret_cast<uint32_t(&)[4]>(x);
  const uint32_t(&gs)[4] = reinterpret_cast<const uint32_t(&)[4]>(g);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 xv = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162&>(xs[i]));
    const float2 gv = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162&>(gs[i]));
    squares = fmaf(xv.x, xv.x, fmaf(xv.y, xv.y, squares));
    const __nv_bfloat162 scaled = __floats2bfloat162_rn(xv.x * gv.x, xv.y * gv.y);
    xs[i] = reinterpret_cast<const uint32_t&>(scaled);
  }
  return x;
}

// y's element (row, o) = the product's sum: the epilogue stores it (Epilogue::operator()(row, o, sum),
// called once per element of y by one thread, after the wait for x's kernel; for a paired
// epilogue operator()(row, pair, first sum, second sum)).
template <int kWarps, int kTiles, bool kNormed, typename Epilogue>
__global__ void __launch_bounds__(kWarps * 32)
    skinny_linear_kernel(SkinnyLinearShape s, const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                         Epilogue epilogue) {
  constexpr int kOutputs = 8 * kTiles;
  __shared__ float partial[kWarps][kRowsPerBlock][kOutputs + 1];  // +1: no bank conflicts on the sum
  __shared__ float row_squares[kWarps][kRowsPerBlock];            // kNormed: Σ x² of each warp's k
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const long long first_output = static_cast<long long>(blockIdx.x) * kOutputs;
  const long long low_row = static_cast<long long>(blockIdx.y) * kRowsPerBlock + g, high_row = low_row + 8;
  const bool has_low = low_row < s.rows, has_high = high_row < s.rows;
  const __nv_bfloat16* x_low = x + (has_low ? low_row : 0) * s.x_row_stride;
  const __nv_bfloat16* x_high = x + (has_high ? high_row : 0) * s.x_row_stride;
  const __nv_bfloat16* w_row[kTiles];
  bool has_output[kTiles];
#pragma unroll
  for (int tile = 0; tile < kTiles; ++tile) {
    const long long o = first_output + 8 * tile + g;
    has_output[tile] = o < s.out;
    w_row[tile] = w + (has_output[tile] ? o : 0) * s.in;
  }

  // The k offset of thread (g, t) in chunk c of a super-chunk.
  auto k_of = [&](long long super, int c) { return super * kSuper + c * 32 + t * 8; };
  // W's 16-byte pieces of one super-chunk (zeros past in: in is a multiple of 8, so all 8 or none).
  auto load_weights = [&](long long super, uint4 (&wv)[kTiles][kChunks]) {
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const long long k = k_of(super, c);
#pragma unroll
      for (int tile = 0; tile < kTiles; ++tile)
        wv[tile][c] = k < s.in && has_output[tile] ? load_streamed(w_row[tile] + k) : make_uint4(0, 0, 0, 0);
    }
  };

  // W is no earlier kernel's output: the first super-chunk's pieces are read before waiting for
  // the kernel that writes x (core/cuda/dependent_launch.cuh), hiding this launch's first DRAM trip.
  const long long supers = (s.in + kSuper - 1) / kSuper;
  uint4 wv[kTiles][kChunks];
  load_weights(warp, wv);
  wait_for_prerequisites();
  let_dependents_launch();

  float acc[kTiles][4] = {};
  float squares_low = 0.f, squares_high = 0.f;  // kNormed: Σ x² over this thread's k, rows g and g + 8
  const __nv_bfloat16* norm_weight = static_cast<const __nv_bfloat16*>(s.norm_weight);
  for (long long super = warp; super < supers; super += kWarps) {
    uint4 xl[kChunks], xh[kChunks];
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const long long k = k_of(super, c);
      const bool in_range = k < s.in;
      xl[c] = in_range && has_low ? __ldg(reinterpret_cast<const uint4*>(x_low + k)) : make_uint4(0, 0, 0, 0);
      xh[c] = in_range && has_high ? __ldg(reinterpret_cast<const uint4*>(x_high + k)) : make_uint4(0, 0, 0, 0);
      if constexpr (kNormed) {
        const uint4 gv = in_range ? __ldg(reinterpret_cast<const uint4*>(norm_weight + k)) : make_uint4(0, 0, 0, 0);
        xl[c] = scale_and_square(xl[c], gv, squares_low);
        xh[c] = scale_and_square(xh[c], gv, squares_high);
      }
    }
#pragma unroll
    for (int c = 0; c < kChunks; ++c)
#pragma unroll
      for (int tile = 0; tile < kTiles; ++tile) {
        mma_16816(acc[tile], xl[c].x, xh[c].x, xl[c].y, xh[c].y, wv[tile][c].x, wv[tile][c].y);
        mma_16816(acc[tile], xl[c].z, xh[c].z, xl[c].w, xh[c].w, wv[tile][c].z, wv[tile][c].w);
      }
    if (super + kWarps < supers) load_weights(super + kWarps, wv);
  }

  // C fragment: acc[tile][0..1] at row g, outputs 2t, 2t+1 of the tile; [2..3] at row g + 8.
#pragma unroll
  for (int tile = 0; tile < kTiles; ++tile) {
    partial[warp][g][8 * tile + 2 * t] = acc[tile][0];
    partial[warp][g][8 * tile + 2 * t + 1] = acc[tile][1];
    partial[warp][g + 8][8 * tile + 2 * t] = acc[tile][2];
    partial[warp][g + 8][8 * tile + 2 * t + 1] = acc[tile][3];
  }
  if constexpr (kNormed) {  // the 4 lanes of a group g hold rows g and g + 8 at different k
#pragma unroll
    for (int mask = 1; mask <= 2; mask <<= 1) {
      squares_low += __shfl_xor_sync(0xffffffffu, squares_low, mask);
      squares_high += __shfl_xor_sync(0xffffffffu, squares_high, mask);
    }
    if (t == 0) {
      row_squares[warp][g] = squares_low;
      row_squares[warp][g + 8] = squares_high;
    }
  }
  __syncthreads();
  // 1 / RMS of the block's row m (kNormed), else 1.
  auto row_scale = [&](int m) {
    if constexpr (!kNormed) return 1.f;
    float sum = 0.f;
#pragma unroll
    for (int v = 0; v < kWarps; ++v) sum += row_squares[v][m];
    return rsqrtf(sum / static_cast<float>(s.in) + s.norm_eps);
  };
  if constexpr (PairsTiles<Epilogue>::value) {  // tile 0's output j and tile 1's output j, together
    static_assert(kTiles == 2, "a paired epilogue takes two tiles per block");
    for (int i = threadIdx.x; i < kRowsPerBlock * 8; i += blockDim.x) {
      const int m = i / 8, j = i % 8;
      const long long row = static_cast<long long>(blockIdx.y) * kRowsPerBlock + m;
      const long long pair = static_cast<long long>(blockIdx.x) * 8 + j;
      if (row >= s.rows || 2 * pair >= s.out) continue;
      float first = 0.f, second = 0.f;
#pragma unroll
      for (int v = 0; v < kWarps; ++v) {
        first += partial[v][m][j];
        second += partial[v][m][8 + j];
      }
      const float scale = row_scale(m);
      epilogue(row, pair, first * scale, second * scale);
    }
  } else {
    for (int i = threadIdx.x; i < kRowsPerBlock * kOutputs; i += blockDim.x) {
      const int m = i / kOutputs, j = i % kOutputs;
      const long long row = static_cast<long long>(blockIdx.y) * kRowsPerBlock + m, o = first_output + j;
      if (row >= s.rows || o >= s.out) continue;
      float sum = 0.f;
#pragma unroll
      for (int v = 0; v < kWarps; ++v) sum += partial[v][m][j];
      epilogue(row, o, sum * row_scale(m));
    }
  }
}

}  // namespace skinny

// Whether a long k takes 16-warp blocks: not when MIXLAB_SKINNY_WIDE is "0" (core/ab_switch.h;
// the A/B of bench/decode_issue13.sh).
inline bool wide_blocks_enabled() {
  static const bool enabled = ab_switch_on("MIXLAB_SKINNY_WIDE");
  return enabled;
}

inline void check_skinny_cuda(const char* what, cudaError_t error, const char* call) {
  if (error != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + call + ": " + cudaGetErrorString(error));
}

inline void check_skinny_shape(const char* what, const SkinnyLinearShape& s) {
  if (s.rows < 1 || s.rows > kSkinnyMaxRows || s.in < kSkinnyVector || s.in % kSkinnyVector != 0 || s.out < 1 ||
      s.x_row_stride < s.in || s.x_row_stride % kSkinnyVector != 0 ||
      reinterpret_cast<std::uintptr_t>(s.norm_weight) % 16 != 0)
    throw std::invalid_argument(std::string(what) + ": unsupported shape (rows " + std::to_string(s.rows) + ", in " +
                                std::to_string(s.in) + ", out " + std::to_string(s.out) + ", x row stride " +
                                std::to_string(s.x_row_stride) + "; rows 1.." + std::to_string(kSkinnyMaxRows) +
                                ", in and the row stride multiples of " + std::to_string(kSkinnyVector) +
                                ", a norm weight 16-byte aligned)");
}

// Launches skinny_linear_kernel for `shape` (checked: throws std::invalid_argument naming what is
// unsupported) as a programmatic dependent of the stream's previous kernel.  Two tiles per block
// (x's loads shared by twice the outputs) once that still gives every SM two blocks; one
// otherwise, so a narrow W still spreads over the GPU.  16 warps per block where in has more than
// 8 super-chunks, else 8.
template <typename Epilogue>
void launch_skinny_linear(const char* what, const SkinnyLinearShape& shape, const void* x, const void* weight,
                          const Epilogue& epilogue, cudaStream_t stream) {
  check_skinny_shape(what, shape);
  int device = 0, sms = 1;
  check_skinny_cuda(what, cudaGetDevice(&device), "cudaGetDevice");
  check_skinny_cuda(what, cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "SM count");
  using namespace skinny;
  const unsigned row_blocks = static_cast<unsigned>((shape.rows + kRowsPerBlock - 1) / kRowsPerBlock);
  const bool wide = (shape.in + kSuper - 1) / kSuper > kSkinnyWarps && wide_blocks_enabled();
  auto launch = [&](auto kernel, int warps, long long outputs_per_block) {
    const dim3 grid(static_cast<unsigned>((shape.out + outputs_per_block - 1) / outputs_per_block), row_blocks);
    launch_dependent(what, kernel, grid, dim3(warps * 32), 0, stream, shape, static_cast<const __nv_bfloat16*>(x),
                     static_cast<const __nv_bfloat16*>(weight), epilogue);
  };
  auto launch_normed = [&](auto tiles, auto normed) {
    constexpr int kTiles = decltype(tiles)::value;
    constexpr bool kNormed = decltype(normed)::value;
    if (wide) launch(skinny_linear_kernel<kSkinnyWideWarps, kTiles, kNormed, Epilogue>, kSkinnyWideWarps, 8 * kTiles);
    else launch(skinny_linear_kernel<kSkinnyWarps, kTiles, kNormed, Epilogue>, kSkinnyWarps, 8 * kTiles);
  };
  auto launch_tiles = [&](auto tiles) {
    if (shape.norm_weight != nullptr) launch_normed(tiles, std::true_type{});
    else launch_normed(tiles, std::false_type{});
  };
  if constexpr (PairsTiles<Epilogue>::value) {
    if (shape.out % 16 != 0)
      throw std::invalid_argument(std::string(what) + ": W's rows come in blocks of 16 (8 pairs); out is " +
                                  std::to_string(shape.out));
    launch_tiles(std::integral_constant<int, 2>{});
  } else if ((shape.out + 15) / 16 >= 2LL * sms) {
    launch_tiles(std::integral_constant<int, 2>{});
  } else {
    launch_tiles(std::integral_constant<int, 1>{});
  }
}

}  // namespace mixlab::cuda::detail
