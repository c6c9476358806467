// attention/cuda/slot_attention.cu, both ways of merging its splits (the merge kernel, and with the
// trial MIXLAB_SLOT_CLUSTER_MERGE=1 the first block of each (b, h)'s cluster), against a float64
// reference on the CPU, without LibTorch: nvcc builds this in seconds, for a device call too short
// for the whole build (the suite's tests are CudaKernels.SlotAttention*).  Slots past the last one
// attended to hold NaN, so reading one shows.
//
//   nvcc -std=c++17 -arch=sm_90a -I. --expt-relaxed-constexpr --use_fast_math \
//     tests/device/slot_attention_check.cu attention/cuda/slot_attention.cu -o /tmp/sac && /tmp/sac [--time]
//
// --time: 34 steps' attention in one CUDA graph (scout-swa-470m's attention sublayers), B·H = 256
// (batch 16, 16 heads), d_h 64, at 512 and 2,048 slots (2 and 8 splits), each way; µs per call,
// the median of 20 replays.  Exit status 0 when every comparison passes.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "attention/cuda/slot_attention.h"
#include "tests/device/graph_timing.cuh"

namespace {

using mixlab::cuda::detail::SlotAttentionShape;
using mixlab::cuda::detail::SlotElement;
using bf16 = __nv_bfloat16;

void merge_in_clusters(bool on) {
  if (on) ::setenv("MIXLAB_SLOT_CLUSTER_MERGE", "1", 1);
  else ::unsetenv("MIXLAB_SLOT_CLUSTER_MERGE");
}

struct Case {
  int batch_heads, capacity, count, head_dim;
  long long divisor, t;
};

// o = softmax over slots j < count, j ≤ ⌊t/divisor⌋ of q·k_j / √d, times v, in float64.
std::vector<double> reference(const Case& c, const std::vector<float>& q, const std::vector<float>& k,
                              const std::vector<float>& v) {
  const int seen = static_cast<int>(std::min<long long>(c.count, c.t / c.divisor + 1));
  std::vector<double> out(static_cast<size_t>(c.batch_heads) * c.head_dim, 0.0);
  for (int bh = 0; bh < c.batch_heads; ++bh) {
    std::vector<double> score(seen);
    double m = -INFINITY;
    for (int j = 0; j < seen; ++j) {
      double dot = 0;
      for (int e = 0; e < c.head_dim; ++e)
        dot += static_cast<double>(q[bh * c.head_dim + e]) * k[(static_cast<size_t>(bh) * c.capacity + j) * c.head_dim + e];
      score[j] = dot / std::sqrt(static_cast<double>(c.head_dim));
      m = std::max(m, score[j]);
    }
    double l = 0;
    for (int j = 0; j < seen; ++j) l += std::exp(score[j] - m);
    for (int j = 0; j < seen; ++j)
      for (int e = 0; e < c.head_dim; ++e)
        out[bh * c.head_dim + e] +=
            std::exp(score[j] - m) / l * v[(static_cast<size_t>(bh) * c.capacity + j) * c.head_dim + e];
  }
  return out;
}

struct DeviceCase {
  SlotAttentionShape shape;
  bf16 *q, *k, *v, *out;
  long long* position;
  float* partial;
};

// Random bf16 q, k, v (the float copies hold the rounded values); slots ≥ seen NaN on the device.
DeviceCase upload(const Case& c, std::vector<float>& q, std::vector<float>& k, std::vector<float>& v, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  auto fill = [&](std::vector<float>& x, size_t n) {
    x.resize(n);
    for (auto& value : x) value = __bfloat162float(__float2bfloat16(normal(rng)));
  };
  const size_t rows = static_cast<size_t>(c.batch_heads) * c.capacity;
  fill(q, static_cast<size_t>(c.batch_heads) * c.head_dim);
  fill(k, rows * c.head_dim);
  fill(v, rows * c.head_dim);
  const int seen = static_cast<int>(std::min<long long>(c.count, c.t / c.divisor + 1));
  auto to_device = [&](const std::vector<float>& x, bool poison) {
    std::vector<bf16> h(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      const size_t slot = (i / c.head_dim) % c.capacity;
      h[i] = __float2bfloat16(poison && slot >= static_cast<size_t>(seen) ? NAN : x[i]);
    }
    bf16* d = nullptr;
    DEVICE_CHECK(cudaMalloc(&d, h.size() * sizeof(bf16)));
    DEVICE_CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(bf16), cudaMemcpyHostToDevice));
    return d;
  };
  DeviceCase d;
  d.shape.element = SlotElement::bf16;
  d.shape.batch_heads = c.batch_heads;
  d.shape.capacity = c.capacity;
  d.shape.count = c.count;
  d.shape.divisor = c.divisor;
  d.shape.head_dim = c.head_dim;
  d.shape.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  mixlab::cuda::detail::slot_attention_splits(d.shape);
  d.q = to_device(q, false);
  d.k = to_device(k, true);
  d.v = to_device(v, true);
  DEVICE_CHECK(cudaMalloc(&d.out, static_cast<size_t>(c.batch_heads) * c.head_dim * sizeof(bf16)));
  DEVICE_CHECK(cudaMalloc(&d.partial, static_cast<size_t>(c.batch_heads) * d.shape.splits * (c.head_dim + 2) * sizeof(float)));
  DEVICE_CHECK(cudaMalloc(&d.position, sizeof(long long)));
  DEVICE_CHECK(cudaMemcpy(d.position, &c.t, sizeof(long long), cudaMemcpyHostToDevice));
  return d;
}

void run(const DeviceCase& d, cudaStream_t stream) {
  mixlab::cuda::detail::slot_attention(d.shape, d.q, d.k, d.v, reinterpret_cast<const int64_t*>(d.position), d.partial,
                                       d.out, stream);
}

bool check(const Case& c) {
  std::vector<float> q, k, v;
  const DeviceCase d = upload(c, q, k, v, 3u + c.count + c.head_dim);
  const auto want = reference(c, q, k, v);
  bool ok = true;
  for (bool clusters : {false, true}) {
    merge_in_clusters(clusters);
    DEVICE_CHECK(cudaMemset(d.out, 0xff, static_cast<size_t>(c.batch_heads) * c.head_dim * sizeof(bf16)));  // NaN
    run(d, nullptr);
    DEVICE_CHECK(cudaDeviceSynchronize());
    std::vector<bf16> got(want.size());
    DEVICE_CHECK(cudaMemcpy(got.data(), d.out, got.size() * sizeof(bf16), cudaMemcpyDeviceToHost));
    double gap = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      const double g = __bfloat162float(got[i]);
      gap = std::isfinite(g) ? std::max(gap, std::fabs(g - want[i])) : INFINITY;
    }
    const bool pass = gap < 1.5e-2;
    ok = ok && pass;
    std::printf("%-13s d %3d count %4d splits %d divisor %lld t %5lld: max |error| %.2e  %s\n",
                clusters ? "cluster merge" : "merge kernel", c.head_dim, c.count, d.shape.splits, c.divisor, c.t, gap,
                pass ? "ok" : "FAILED");
  }
  merge_in_clusters(false);
  return ok;
}

double time_calls(const DeviceCase& d, bool clusters, int calls) {
  merge_in_clusters(clusters);
  const double us = graph_us_per_call(calls, [&](int, cudaStream_t stream) { run(d, stream); });
  merge_in_clusters(false);
  return us;
}

}  // namespace

int main(int argc, char** argv) {
  bool ok = true;
  // One split (count 5), two and three (300, 700), eight (2,048); a position that sees one slot,
  // half of them, all; divisor 10 (SCOUT's checkpoints).
  for (int head_dim : {64, 128})
    for (int count : {5, 300, 700, 2048})
      for (long long last : {0LL, static_cast<long long>(count / 2), static_cast<long long>(count + 3)})
        for (long long divisor : {1LL, 10LL})
          ok = check(Case{6, std::max(count, 700), count, head_dim, divisor, last * divisor + divisor - 1}) && ok;
  if (argc > 1 && std::strcmp(argv[1], "--time") == 0) {
    for (int count : {512, 2048}) {
      std::vector<float> q, k, v;
      const Case c{256, count, count, 64, 1, count - 1};
      const DeviceCase d = upload(c, q, k, v, 9u);
      const double kernels = time_calls(d, false, 34), cluster = time_calls(d, true, 34);
      std::printf("B*H 256, d 64, %d slots (%d splits), 34 calls in one graph: merge kernel %.2f us/call, "
                  "cluster merge %.2f us/call (%.2fx)\n", count, d.shape.splits, kernels, cluster, kernels / cluster);
    }
  }
  std::printf("%s\n", ok ? "slot_attention_check: all passed" : "slot_attention_check: FAILED");
  return ok ? 0 : 1;
}
