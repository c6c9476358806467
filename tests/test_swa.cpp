// `swa`: the blockwise sliding-window forward against a naive dense-mask float64 reference
// (j ∈ [t-W+1, t]), against `attention` when W >= N, decode against forward, cost() against a
// direct count of pairs and of the matrix products actually issued, and the O(N·W) memory bound.

#include "attention/swa.h"
#include "harness/flop_counter.h"
#include "core/registry.h"
#include "tests/attention_reference.h"
#include "tests/largest_allocation.h"

#include <gtest/gtest.h>

namespace mixlab {
namespace {

using testing::dense_mask;
using testing::masked_attention;
using testing::max_abs_diff;

constexpr double kTolerance = 1e-11;

torch::Tensor window_mask(int64_t n, int64_t window) {
  return dense_mask(n, [&](int64_t t, int64_t j) { return j >= t - window + 1 && j <= t; });
}

MixerContext small_context(int64_t d_model = 32, int64_t n_heads = 4) {
  MixerContext context;
  context.d_model = d_model;
  context.n_heads = n_heads;
  context.init_std = 0.2;  // sharper attention than 0.02, so that masking errors show
  return context;
}

TokenMixerPtr make_swa(int64_t window, const MixerContext& context, int64_t query_block = 0) {
  auto mixer = Registry::global().create(
      "swa", context, {{"window", window}, {"query_block", query_block}});
  mixer->to(torch::kFloat64);
  return mixer;
}

TEST(SlidingWindowAttention, CoreMatchesDenseMaskReference) {
  torch::manual_seed(1);
  const int64_t n = 37;
  auto q = torch::randn({2, 3, n, 8}, torch::kFloat64);
  auto k = torch::randn({2, 3, n, 8}, torch::kFloat64);
  auto v = torch::randn({2, 3, n, 8}, torch::kFloat64);
  for (int64_t window : {1, 2, 5, 8, 16, 36, 37, 50})
    for (int64_t block : {0, 1, 7, 64}) {
      auto expected = masked_attention(q, k, v, window_mask(n, window));
      auto got = sliding_window_attention(q, k, v, window, block);
      EXPECT_LT(max_abs_diff(got, expected), kTolerance) << "W=" << window << " b=" << block;
    }
}

TEST(SlidingWindowAttention, WindowOneReturnsOwnValue) {
  torch::manual_seed(2);
  auto q = torch::randn({1, 2, 19, 4}, torch::kFloat64);
  auto k = torch::randn({1, 2, 19, 4}, torch::kFloat64);
  auto v = torch::randn({1, 2, 19, 4}, torch::kFloat64);
  EXPECT_LT(max_abs_diff(sliding_window_attention(q, k, v, 1), v), kTolerance);
}

TEST(SlidingWindowAttention, MixerMatchesReferenceFromWeights) {
  torch::manual_seed(3);
  const int64_t n = 37;
  auto context = small_context();
  auto x = torch::randn({2, n, context.d_model}, torch::kFloat64);
  for (int64_t window : {1, 3, 7, 16}) {  // none divides 37
    auto swa = make_swa(window, context);
    auto expected = testing::multi_head_reference(
        *swa, x, context.n_heads, 1e4, [&](const auto& q, const auto& k, const auto& v) {
          return masked_attention(q, k, v, window_mask(n, window));
        });
    EXPECT_LT(max_abs_diff(swa->forward(x), expected), kTolerance) << "W=" << window;
  }
}

TEST(SlidingWindowAttention, WindowCoveringSequenceEqualsAttention) {
  torch::manual_seed(4);
  auto context = small_context();
  auto attention = Registry::global().create("attention", context);
  attention->to(torch::kFloat64);
  auto x = torch::randn({2, 40, context.d_model}, torch::kFloat64);
  auto expected = attention->forward(x);
  for (int64_t window : {40, 64, 1024}) {
    auto swa = make_swa(window, context, /*query_block=*/window == 40 ? 9 : 0);
    testing::copy_parameters(*attention, *swa);
    EXPECT_LT(max_abs_diff(swa->forward(x), expected), kTolerance) << "W=" << window;
  }
}

TEST(SlidingWindowAttention, DecodeEqualsForwardAndCacheStaysWithinWindow) {
  torch::manual_seed(5);
  const int64_t n = 23;
  auto context = small_context();
  auto x = torch::randn({2, n, context.d_model}, torch::kFloat64);
  for (int64_t window : {1, 5, 64}) {
    auto swa = make_swa(window, context);
    torch::NoGradGuard no_grad;
    auto state = swa->initial_state(2, x.options());
    auto decoded = testing::decode_all(*swa, x, state);
    EXPECT_LT(max_abs_diff(decoded, swa->forward(x)), kTolerance) << "W=" << window;
    EXPECT_EQ(state.position, n);
    EXPECT_EQ(state.tensors.at("key_cache").size(2), std::min(n, window));
    const auto cost = swa->cost({2, n, 8});
    EXPECT_DOUBLE_EQ(static_cast<double>(state.bytes()), cost.state_bytes) << "W=" << window;
  }
}

TEST(SlidingWindowAttention, GradientsAreFiniteForEveryParameter) {
  torch::manual_seed(6);
  auto context = small_context();
  auto swa = make_swa(5, context, /*query_block=*/4);
  auto x = torch::randn({2, 21, context.d_model}, torch::kFloat64).requires_grad_(true);
  swa->forward(x).pow(2).sum().backward();
  for (const auto& item : swa->named_parameters()) {
    const auto& grad = item.value().grad();
    ASSERT_TRUE(grad.defined()) << item.key();
    EXPECT_TRUE(torch::isfinite(grad).all().item<bool>()) << item.key();
    EXPECT_GT(grad.abs().sum().item<double>(), 0.0) << item.key();
  }
  EXPECT_TRUE(torch::isfinite(x.grad()).all().item<bool>());
}

TEST(SlidingWindowAttention, CostFlopsCountTheKeptPairs) {
  auto context = small_context();
  for (int64_t n : {1, 7, 37, 100})
    for (int64_t window : {1, 5, 37, 1024}) {
      auto swa = make_swa(window, context);
      const double pairs = window_mask(n, window).sum().item<double>();  // ones of the mask
      const double b = 3, d = context.d_model;
      const auto cost = swa->cost({3, n, 8});
      EXPECT_DOUBLE_EQ(cost.flops, 8 * b * n * d * d + 4 * d * b * pairs) << n << " " << window;
      EXPECT_DOUBLE_EQ(cost.state_bytes, 2 * b * std::min(n, window) * d * 8);
    }
}

TEST(SlidingWindowAttention, MatmulFlopsEqualTheProductsTheForwardIssues) {
  torch::manual_seed(7);
  auto context = small_context();
  for (int64_t n : {1, 16, 37})
    for (int64_t window : {1, 4, 16, 1024})
      for (int64_t block : {0, 5}) {
        auto swa = make_swa(window, context, block);
        auto x = torch::randn({2, n, context.d_model}, torch::kFloat64);
        FlopCounter counter;
        swa->forward(x);
        EXPECT_DOUBLE_EQ(counter.matmul_flops(), swa->cost({2, n, 8}).matmul_flops)
            << "N=" << n << " W=" << window << " b=" << block;
      }
}

// N = 4096, d = 32: the forward's largest buffer is the block scores, B·H·nb·b·(W+b-1) entries,
// far below one head's N×N (the test fails if any N×N buffer is made).
TEST(SlidingWindowAttention, LongSequenceNeverAllocatesNxN) {
  torch::manual_seed(8);
  const int64_t n = 4096, window = 128;
  auto context = small_context(32, 2);
  auto swa = make_swa(window, context);
  auto x = torch::randn({1, n, context.d_model}, torch::kFloat64);
  const auto plan = plan_sliding_window(n, window);
  EXPECT_LE(plan.score_entries(), (n + plan.query_block) * (window + plan.query_block));
  size_t largest = 0;
  {
    testing::LargestCpuAllocation probe;
    auto y = swa->forward(x);
    largest = probe.largest_bytes();
    EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
  }
  const size_t n_by_n = static_cast<size_t>(n) * n * sizeof(double);
  const size_t scores = static_cast<size_t>(context.n_heads * plan.score_entries()) * sizeof(double);
  EXPECT_LE(largest, scores);
  EXPECT_GE(largest, static_cast<size_t>(n * context.d_model) * sizeof(double));  // probe is live
  EXPECT_LT(largest, n_by_n / 4);
}

TEST(SlidingWindowAttention, RejectsWindowZero) {
  EXPECT_THROW(Registry::global().resolve("swa", {{"window", int64_t{0}}}), RegistryError);
}

}  // namespace
}  // namespace mixlab
