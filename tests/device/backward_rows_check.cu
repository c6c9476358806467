// A device check of attention/cuda/sm90/backward_rows.cu that needs no LibTorch and builds in
// seconds (for a device call too short for the whole build; the whole suite checks the same kernels
// end to end through the sm90 backwards' float64 tests):
//   backward_prologue: D_t = Σ_d dO_td O_td against a float64 sum of the same bf16 values, and every
//                      accumulator entry (padding rows too) zero after starting as NaN;
//   dq_from_accumulator: bf16(scale · x) against the CPU's round-to-nearest-even of the same float.
// Build and run (on a Hopper):
//   nvcc -std=c++17 -arch=sm_90a -I. tests/device/backward_rows_check.cu \
//     attention/cuda/sm90/backward_rows.cu attention/cuda/sm90/available.cu -o /tmp/brc && /tmp/brc
// and `/tmp/brc --time` for each kernel's time at 2^20 rows (tests/device/backward_rows_torch.py
// times the LibTorch expressions they replace).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "attention/cuda/sm90/backward_rows.h"

namespace {

uint16_t to_bf16_bits(float x) {  // round to nearest even (no NaN here)
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
float from_bf16_bits(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}
#define CHECK_CUDA(x)                                                              \
  do {                                                                             \
    const cudaError_t e = (x);                                                     \
    if (e != cudaSuccess) {                                                        \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e), __FILE__, __LINE__); \
      std::exit(2);                                                                \
    }                                                                              \
  } while (0)

int check(int bh, int n, int d, std::mt19937& rng) {
  const int n_padded = (n + 63) / 64 * 64;
  const size_t values = static_cast<size_t>(bh) * n * d, accumulator = static_cast<size_t>(bh) * n_padded * d;
  std::normal_distribution<float> normal;
  std::vector<uint16_t> dout(values), o(values);
  for (auto& x : dout) x = to_bf16_bits(normal(rng));
  for (auto& x : o) x = to_bf16_bits(normal(rng));
  uint16_t *dout_d, *o_d, *dq_d;
  float *delta_d, *acc_d;
  CHECK_CUDA(cudaMalloc(&dout_d, values * 2));
  CHECK_CUDA(cudaMalloc(&o_d, values * 2));
  CHECK_CUDA(cudaMalloc(&dq_d, values * 2));
  CHECK_CUDA(cudaMalloc(&delta_d, static_cast<size_t>(bh) * n * 4));
  CHECK_CUDA(cudaMalloc(&acc_d, accumulator * 4));
  CHECK_CUDA(cudaMemcpy(dout_d, dout.data(), values * 2, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(o_d, o.data(), values * 2, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemset(acc_d, 0xff, accumulator * 4));  // NaN everywhere
  mixlab::cuda::sm90::backward_prologue(bh, n, n_padded, d, dout_d, o_d, delta_d, acc_d, nullptr);
  CHECK_CUDA(cudaDeviceSynchronize());
  std::vector<float> delta(static_cast<size_t>(bh) * n), acc(accumulator);
  CHECK_CUDA(cudaMemcpy(delta.data(), delta_d, delta.size() * 4, cudaMemcpyDeviceToHost));
  CHECK_CUDA(cudaMemcpy(acc.data(), acc_d, accumulator * 4, cudaMemcpyDeviceToHost));
  int failures = 0;
  double worst = 0;
  for (size_t row = 0; row < delta.size(); ++row) {
    double sum = 0;
    for (int c = 0; c < d; ++c) sum += double(from_bf16_bits(dout[row * d + c])) * from_bf16_bits(o[row * d + c]);
    worst = std::max(worst, std::fabs(sum - delta[row]) / (1.0 + std::fabs(sum)));
  }
  if (worst > 1e-5) ++failures, std::printf("  D: worst relative error %.3g (> 1e-5)\n", worst);
  size_t nonzero = 0;
  for (float x : acc) nonzero += !(x == 0.f);
  if (nonzero) ++failures, std::printf("  accumulator: %zu of %zu entries not zeroed\n", nonzero, accumulator);

  std::uniform_real_distribution<float> uniform(-100.f, 100.f);
  for (auto& x : acc) x = uniform(rng);
  CHECK_CUDA(cudaMemcpy(acc_d, acc.data(), accumulator * 4, cudaMemcpyHostToDevice));
  const float scale = 0.125f;
  mixlab::cuda::sm90::dq_from_accumulator(bh, n, n_padded, d, scale, acc_d, dq_d, nullptr);
  CHECK_CUDA(cudaDeviceSynchronize());
  std::vector<uint16_t> dq(values);
  CHECK_CUDA(cudaMemcpy(dq.data(), dq_d, values * 2, cudaMemcpyDeviceToHost));
  size_t wrong = 0;
  for (int h = 0; h < bh; ++h)
    for (int t = 0; t < n; ++t)
      for (int c = 0; c < d; ++c) {
        const float x = acc[((static_cast<size_t>(h) * (d / 64) + c / 64) * n_padded + t) * 64 + c % 64];
        wrong += dq[(static_cast<size_t>(h) * n + t) * d + c] != to_bf16_bits(scale * x);
      }
  if (wrong) ++failures, std::printf("  dq: %zu of %zu values differ from bf16(scale x)\n", wrong, values);
  std::printf("%s  B·H %d, N %d, d %d\n", failures ? "FAILED" : "ok    ", bh, n, d);
  cudaFree(dout_d), cudaFree(o_d), cudaFree(dq_d), cudaFree(delta_d), cudaFree(acc_d);
  return failures;
}

// `--time`: median ms of each kernel at B·H 16, N 65,536 (2^20 rows; operands far larger than L2).
void time_kernels() {
  const int bh = 16, n = 65536;
  for (int d : {64, 128}) {
    const size_t values = static_cast<size_t>(bh) * n * d;
    void *dout, *o, *dq;
    float *delta, *acc;
    CHECK_CUDA(cudaMalloc(&dout, values * 2));
    CHECK_CUDA(cudaMalloc(&o, values * 2));
    CHECK_CUDA(cudaMalloc(&dq, values * 2));
    CHECK_CUDA(cudaMalloc(&delta, static_cast<size_t>(bh) * n * 4));
    CHECK_CUDA(cudaMalloc(&acc, values * 4));
    CHECK_CUDA(cudaMemset(dout, 0, values * 2));
    CHECK_CUDA(cudaMemset(o, 0, values * 2));
    cudaEvent_t start, stop;
    cudaEventCreate(&start), cudaEventCreate(&stop);
    auto median_ms = [&](auto&& run) {
      std::vector<float> ms;
      for (int i = 0; i < 25; ++i) {
        cudaEventRecord(start);
        run();
        cudaEventRecord(stop);
        cudaEventSynchronize(stop);
        float t;
        cudaEventElapsedTime(&t, start, stop);
        if (i >= 5) ms.push_back(t);
      }
      std::sort(ms.begin(), ms.end());
      return ms[ms.size() / 2];
    };
    const float before = median_ms([&] { mixlab::cuda::sm90::backward_prologue(bh, n, n, d, dout, o, delta, acc, nullptr); });
    const float after = median_ms([&] { mixlab::cuda::sm90::dq_from_accumulator(bh, n, n, d, 0.125f, acc, dq, nullptr); });
    std::printf("time: d %d, B·H %d, N %d: backward_prologue %.3f ms, dq_from_accumulator %.3f ms\n", d, bh, n, before, after);
    cudaFree(dout), cudaFree(o), cudaFree(dq), cudaFree(delta), cudaFree(acc);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--time") == 0) {
    time_kernels();
    return 0;
  }
  std::mt19937 rng(7);
  int failures = 0;
  for (int d : {64, 128})
    for (int n : {1, 63, 64, 77, 1000})
      for (int bh : {1, 3}) failures += check(bh, n, d, rng);
  std::printf("backward_rows_check: %s\n", failures ? "FAILED" : "all passed");
  return failures ? 1 : 0;
}
