// `swa`: what only the sliding window has.  With W = 1 each query sees only itself; with W ≥ N
// the layer is `attention`.  The tests it shares with the other masked schemes (dense-mask
// reference, decode, gradients, cost, memory): tests/test_masked_attention.cpp.

#include "attention/swa.h"
#include "tests/masked_schemes.h"

#include <gtest/gtest.h>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

using namespace testing;

constexpr double kTolerance = 1e-11;

TEST(SlidingWindowAttention, WindowOneReturnsOwnValue) {
  torch::manual_seed(2);
  auto q = torch::randn({1, 2, 19, 4}, torch::kFloat64);
  auto k = torch::randn({1, 2, 19, 4}, torch::kFloat64);
  auto v = torch::randn({1, 2, 19, 4}, torch::kFloat64);
  EXPECT_LT(max_abs_diff(sliding_window_attention(q, k, v, 1), v), kTolerance);
}

TEST(SlidingWindowAttention, WindowCoveringSequenceEqualsAttention) {
  torch::manual_seed(4);
  auto context = masked_attention_context();
  auto attention = make_float64("attention", context);
  auto x = torch::randn({2, 40, context.d_model}, torch::kFloat64);
  auto expected = attention->forward(x);
  for (int64_t window : {40, 64, 1024}) {
    auto swa = make_scheme<SlidingWindowScheme>(window, context, /*query_block=*/window == 40 ? 9 : 0);
    copy_parameters(*attention, *swa);
    EXPECT_LT(max_abs_diff(swa->forward(x), expected), kTolerance) << "W=" << window;
  }
}

}  // namespace
}  // namespace mixlab
