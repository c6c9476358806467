#pragma once
// A warpgroup's running softmax over key tiles (FlashAttention's online softmax) for the sm90
// forward kernels, head dim 64, in the log2 domain: with s = q·k · scale · log2 e,
//   m = running max,  l = Σ 2^(s − m),  O = Σ 2^(s − m) v,   and at the end
//   o = O / l,  lse = (m + log2 l) · ln 2.
// Per thread: the two accumulator rows r, r + 8 of wgmma.cuh's layout (16 of their columns); l is
// a per-thread partial sum, added over the quad of lanes sharing the rows at the end.

#include <cuda_bf16.h>
#include <cstdint>

#include "attention/cuda/mma_tiles.cuh"
#include "attention/cuda/sm90/wgmma.cuh"

namespace mixlab::cuda::sm90 {

#if MIXLAB_SM90A
struct OnlineSoftmax {
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  float acc[32];  // O: m64 (queries) x n64 (head dim)

  __device__ void clear() {
#pragma unroll
    for (int i = 0; i < 32; ++i) acc[i] = 0.f;
  }

  // s: a tile's scores, masked (−inf where hidden), in the log2 domain -> its probabilities
  // 2^(s − m_new) in place; O and l rescaled by 2^(m_old − m_new).
  __device__ void absorb(float (&s)[32]) {
    float alpha[2], base[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float mx = -INFINITY;
#pragma unroll
      for (int jj = 0; jj < 8; ++jj) mx = fmaxf(mx, fmaxf(s[4 * jj + 2 * h], s[4 * jj + 2 * h + 1]));
      const float m_new = fmaxf(m[h], tiles::quad_max(mx));
      base[h] = m_new == -INFINITY ? 0.f : m_new;  // a row with nothing visible yet
      alpha[h] = exp2f(m[h] - base[h]);
      m[h] = m_new;
    }
    float row_sum[2] = {0.f, 0.f};
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      const int h = (i >> 1) & 1;
      s[i] = exp2f(s[i] - base[h]);
      row_sum[h] += s[i];
      acc[i] *= alpha[h];  // acc has the same rows (its columns are the head dim)
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) l[h] = l[h] * alpha[h] + row_sum[h];
  }

  // O += P V: P from the probabilities' registers, V a [64 keys x 64] MN-major tile (k16 step kk =
  // keys 16kk .. 16kk + 15, 16 rows further in).
  __device__ void accumulate(const float (&p)[32], const unsigned char* v_tile) {
    uint32_t a[4][4];
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) accumulator_to_a(p, kk, a[kk]);
    const uint64_t v_desc = descriptor_mn_major(v_tile);
    fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) mma_rs<1>(acc, a[kk], advance(v_desc, 16 * 128 * kk), 1);
    commit();
    wait<0>();
    fence_registers(acc);
  }

  // One key tile: S = Q Kᵀ (q_desc: the warpgroup's 64 query rows, K-major; k_tile: 64 keys,
  // K-major), scaled into the log2 domain, hidden where !visible(column, h) (column: the key's
  // index in the tile, h: the thread's row r or r + 8), then absorbed, and O += P V.
  template <class Visible>
  __device__ void attend(uint64_t q_desc, const unsigned char* k_tile, const unsigned char* v_tile, float scale_log2,
                         Visible visible) {
    float s[32];
    const uint64_t k_desc = descriptor_k_major(k_tile);
    fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) mma_ss<0, 0>(s, advance(q_desc, 32 * kk), advance(k_desc, 32 * kk), kk > 0);
    commit();
    wait<0>();
    fence_registers(s);
    const int quad = threadIdx.x % 4;
#pragma unroll
    for (int i = 0; i < 32; ++i)
      s[i] = visible(8 * (i / 4) + 2 * quad + (i & 1), (i >> 1) & 1) ? s[i] * scale_log2 : -INFINITY;
    absorb(s);
    accumulate(s, v_tile);
  }

  // o = O / l and lse for the thread's rows row0, row0 + 8 below n (o: [N, 64] bf16, lse: [N]).
  __device__ void store(int row0, int n, __nv_bfloat16* o, float* lse) {
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = row0 + 8 * h;
      const float total = tiles::quad_sum(l[h]);
      if (row >= n) continue;
      const float inv = 1.f / total;
#pragma unroll
      for (int jj = 0; jj < 8; ++jj) {
        const int col = 8 * jj + 2 * (lane % 4);
        *reinterpret_cast<__nv_bfloat162*>(o + static_cast<size_t>(row) * 64 + col) =
            __floats2bfloat162_rn(acc[4 * jj + 2 * h] * inv, acc[4 * jj + 2 * h + 1] * inv);
      }
      if (lane % 4 == 0) lse[row] = (m[h] + log2f(total)) * 0.6931471805599453f;
    }
  }
};
#endif

}  // namespace mixlab::cuda::sm90
