// RoPE (attention/rope.h) and its table cache (attention/rope_cache.h): the cached tables are
// rope_tables' own bit for bit, one entry per (N, d_h, θ, dtype, device) read again from the same
// storage, at most kRopeCacheEntries kept (the least recently used evicted), safe to share between
// threads, and, on CUDA, nothing inserted from inside a graph capture while what a capture reads
// stays (pinned); apply_rope's reference is the rotate-half equation.  (On CUDA,
// test_cuda_kernels.cpp checks the fused kernel against this reference.)

#include "attention/rope.h"
#include "attention/rope_cache.h"
#include "core/implementation.h"
#include "harness/cuda_graph.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

std::pair<torch::Tensor, torch::Tensor> uncached(int64_t n, int64_t head_dim, double theta, torch::ScalarType dtype) {
  return rope_tables(torch::arange(n, torch::kLong), head_dim, theta, torch::TensorOptions().dtype(dtype));
}

TEST(RopeCache, TablesAreRopeTablesBitForBit) {
  clear_rope_cache();
  for (const auto dtype : {torch::kFloat64, torch::kFloat32, torch::kBFloat16, torch::kHalf}) {
    for (const int64_t n : {1, 7, 300}) {
      for (const int64_t head_dim : {8, 64, 128}) {
        const double theta = head_dim == 64 ? 1e6 : 1e4;
        const auto [cos, sin] = rope_tables_cached(n, head_dim, theta, torch::TensorOptions().dtype(dtype));
        const auto [want_cos, want_sin] = uncached(n, head_dim, theta, dtype);
        SCOPED_TRACE(std::string(c10::toString(dtype)) + " N=" + std::to_string(n) +
                     " d_h=" + std::to_string(head_dim));
        EXPECT_EQ(cos.scalar_type(), dtype);
        EXPECT_EQ(cos.sizes(), (std::vector<int64_t>{n, head_dim}));
        EXPECT_TRUE(torch::equal(cos, want_cos));
        EXPECT_TRUE(torch::equal(sin, want_sin));
        EXPECT_FALSE(cos.requires_grad());
      }
    }
  }
  EXPECT_LE(rope_cache_stats().entries, kRopeCacheEntries);
}

TEST(RopeCache, ASecondLookupReturnsTheSameStorage) {
  clear_rope_cache();
  const auto options = torch::TensorOptions().dtype(torch::kFloat32);
  const auto hits = rope_cache_stats().hits;
  const auto first = rope_tables_cached(64, 16, 1e4, options);
  const auto second = rope_tables_cached(64, 16, 1e4, options);
  EXPECT_EQ(first.first.data_ptr(), second.first.data_ptr());
  EXPECT_EQ(first.second.data_ptr(), second.second.data_ptr());
  EXPECT_EQ(rope_cache_stats().hits, hits + 1);
  EXPECT_EQ(rope_cache_stats().entries, 1u);
}

TEST(RopeCache, DtypeLengthThetaAndHeadDimEachMakeTheirOwnEntry) {
  clear_rope_cache();
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  const auto base = rope_tables_cached(32, 16, 1e4, f32);
  const std::vector<std::pair<torch::Tensor, torch::Tensor>> others = {
      rope_tables_cached(32, 16, 1e4, f32.dtype(torch::kBFloat16)),  // dtype
      rope_tables_cached(33, 16, 1e4, f32),                          // N
      rope_tables_cached(32, 16, 1e6, f32),                          // theta
      rope_tables_cached(32, 32, 1e4, f32),                          // head dim
  };
  for (const auto& other : others) EXPECT_NE(other.first.data_ptr(), base.first.data_ptr());
  EXPECT_EQ(rope_cache_stats().entries, 5u);
  EXPECT_TRUE(torch::equal(others[0].first, uncached(32, 16, 1e4, torch::kBFloat16).first));
  EXPECT_TRUE(torch::equal(others[1].second, uncached(33, 16, 1e4, torch::kFloat32).second));
  EXPECT_TRUE(torch::equal(others[2].first, uncached(32, 16, 1e6, torch::kFloat32).first));
  EXPECT_FALSE(torch::equal(others[2].first, base.first));
  EXPECT_TRUE(torch::equal(others[3].second, uncached(32, 32, 1e4, torch::kFloat32).second));
}

// Past kRopeCacheEntries keys the least recently used entry goes; the ones read since stay.
TEST(RopeCache, KeepsTheMostRecentlyUsedEntries) {
  clear_rope_cache();
  const auto options = torch::TensorOptions().dtype(torch::kFloat32);
  rope_tables_cached(1, 4, 1e4, options);
  const auto kept = rope_tables_cached(2, 4, 1e4, options).first.data_ptr();
  for (int64_t n = 3; n <= static_cast<int64_t>(kRopeCacheEntries); ++n) rope_tables_cached(n, 4, 1e4, options);
  EXPECT_EQ(rope_cache_stats().entries, kRopeCacheEntries);
  EXPECT_EQ(rope_tables_cached(2, 4, 1e4, options).first.data_ptr(), kept);  // now the most recent
  rope_tables_cached(100, 4, 1e4, options);                                   // evicts N = 1
  EXPECT_EQ(rope_cache_stats().entries, kRopeCacheEntries);
  EXPECT_EQ(rope_tables_cached(2, 4, 1e4, options).first.data_ptr(), kept);
  const auto again = rope_tables_cached(1, 4, 1e4, options);  // recomputed (and N = 3 evicted)
  EXPECT_TRUE(torch::equal(again.first, uncached(1, 4, 1e4, torch::kFloat32).first));
  EXPECT_EQ(rope_cache_stats().entries, kRopeCacheEntries);
}

TEST(RopeCache, ThreadsShareItSafely) {
  clear_rope_cache();
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([t, &failures] {
      for (int i = 0; i < 50; ++i) {
        const int64_t n = 8 + (i + t) % 12;  // more keys than entries: evictions race with reads
        const auto [cos, sin] = rope_tables_cached(n, 8, 1e4, torch::TensorOptions().dtype(torch::kFloat64));
        failures[t] += torch::equal(sin, uncached(n, 8, 1e4, torch::kFloat64).second) ? 0 : 1;
      }
    });
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
  EXPECT_LE(rope_cache_stats().entries, kRopeCacheEntries);
}

// y = x·cos + rotate_half(x)·sin written element by element, on a transposed (strided) x as
// multi-head attention passes it; on the CPU the dispatch runs (and records) the reference.
TEST(Rope, ApplyRopeIsTheRotateHalfEquation) {
  torch::manual_seed(3);
  const int64_t batch = 2, heads = 3, n = 5, dh = 8;
  auto x = torch::randn({batch, n, heads, dh}, torch::kFloat64).transpose(1, 2);  // [B, H, N, d_h]
  const auto [cos, sin] = rope_tables_cached(n, dh, 1e4, x.options());
  ImplementationLog log;
  const auto y = apply_rope(x, cos, sin);
  EXPECT_EQ(log.summary(), "apply_rope=reference");
  auto want = torch::empty_like(x);
  for (int64_t i = 0; i < dh / 2; ++i) {
    auto a = x.select(-1, i), b = x.select(-1, i + dh / 2);
    want.select(-1, i).copy_(a * cos.select(-1, i) - b * sin.select(-1, i));
    want.select(-1, i + dh / 2).copy_(b * cos.select(-1, i + dh / 2) + a * sin.select(-1, i + dh / 2));
  }
  EXPECT_TRUE(torch::allclose(y, want, 1e-14, 1e-14));
}

// A capture whose first lookup of a key happens inside it computes the tables in the graph (the
// cache stays empty); a capture after an eager warm-up reads the cached tables and pins them, so
// neither clearing nor evictions free what the graph reads on every replay.
TEST(RopeCache, ACaptureInsertsNothingAndPinsWhatItReads) {
  if (!cuda_graphs_compiled() || !torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  const auto options = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat32);
  const int64_t n = 48, dh = 16;
  auto x = torch::randn({1, 2, n, dh}, options);  // [B, H, N, d_h], read at its address by the graphs
  torch::Tensor y;
  auto call = [&] {
    const auto tables = rope_tables_cached(n, dh, 1e4, options);
    y = apply_rope(x, tables.first, tables.second);
  };
  auto expect_rotated = [&] {  // y against the CPU reference for the x of now
    torch::cuda::synchronize();
    const auto [cos, sin] = rope_tables(torch::arange(n), dh, 1e4, torch::TensorOptions().dtype(torch::kFloat32));
    EXPECT_TRUE(torch::allclose(y.cpu(), apply_rope(x.cpu(), cos, sin), 1e-6, 1e-6));
  };
  {  // every kernel loaded eagerly once (another N), then an empty cache
    const auto other = rope_tables_cached(n - 1, dh, 1e4, options);
    apply_rope(x.narrow(2, 0, n - 1), other.first, other.second);
    clear_rope_cache(true);
  }
  {
    CapturedCall cold(call, /*warmup=*/0);
    ASSERT_TRUE(cold.captured()) << cold.why_not();
    EXPECT_EQ(rope_cache_stats().entries, 0u);
    x.copy_(torch::randn_like(x));
    cold.replay();
    expect_rotated();
  }
  {
    CapturedCall warm(call, /*warmup=*/1);
    ASSERT_TRUE(warm.captured()) << warm.why_not();
    EXPECT_EQ(rope_cache_stats().entries, 1u);
    EXPECT_EQ(rope_cache_stats().pinned, 1u);
    const auto pinned = rope_tables_cached(n, dh, 1e4, options).first.data_ptr();
    clear_rope_cache();
    for (int64_t other = 1; other <= static_cast<int64_t>(kRopeCacheEntries) + 2; ++other)
      rope_tables_cached(other, dh, 1e4, options);
    EXPECT_EQ(rope_tables_cached(n, dh, 1e4, options).first.data_ptr(), pinned);
    EXPECT_LE(rope_cache_stats().entries, kRopeCacheEntries);
    x.copy_(torch::randn_like(x));
    warm.replay();
    expect_rotated();
  }
  clear_rope_cache(true);  // the graphs are gone
}

}  // namespace
}  // namespace mixlab
