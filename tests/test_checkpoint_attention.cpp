// `checkpoint_attention` (SCOUT): what only the checkpoints have.  The attention set of every
// query read back through autograd, the first segment seeing only itself, and the closed form of
// the kept pairs at a length no mask could hold.  The tests it shares with the other masked
// schemes (dense-mask reference, decode, gradients, cost, memory): tests/test_masked_attention.cpp.

#include "attention/checkpoint_attention.h"
#include "tests/masked_schemes.h"

#include <gtest/gtest.h>

#include <set>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

using namespace testing;

constexpr double kTolerance = 1e-11;

// Read the attention set back from the forward itself: o_t depends on v_j iff j ∈ A(t), since
// every kept softmax weight is positive.  A(t) must be {t} ∪ {mS+S-1 < t}, of size 1 + ⌊t/S⌋.
TEST(CheckpointAttention, EachQuerySeesItselfAndTheEarlierCheckpoints) {
  torch::manual_seed(12);
  const int64_t n = 23;
  auto q = torch::randn({1, 2, n, 4}, torch::kFloat64);
  auto k = torch::randn({1, 2, n, 4}, torch::kFloat64);
  for (int64_t s : {1, 3, 5, 30})
    for (int64_t t = 0; t < n; ++t) {
      auto v = torch::randn({1, 2, n, 4}, torch::kFloat64).requires_grad_(true);
      checkpoint_attention(q, k, v, s, /*query_block=*/4).select(2, t).sum().backward();
      auto touched = v.grad().abs().sum({0, 1, 3});  // [N]
      std::set<int64_t> seen, expected;
      for (int64_t j = 0; j < n; ++j) {
        if (touched[j].item<double>() > 0) seen.insert(j);
        if (CheckpointScheme::allows(t, j, s)) expected.insert(j);
      }
      EXPECT_EQ(seen, expected) << "S=" << s << " t=" << t;
      EXPECT_EQ(static_cast<int64_t>(seen.size()), 1 + t / s) << "S=" << s << " t=" << t;
    }
}

// Tokens of the first segment see only themselves: y_t = W_o W_v u_t.
TEST(CheckpointAttention, FirstSegmentOutputsItsOwnValue) {
  torch::manual_seed(14);
  const int64_t n = 25;
  auto context = masked_attention_context();
  auto x = torch::randn({2, n, context.d_model}, torch::kFloat64);
  for (int64_t s : {1, 10, 40}) {
    auto scout = make_scheme<CheckpointScheme>(s, context);
    auto params = scout->named_parameters();
    auto own_value = torch::matmul(torch::matmul(x, params["v_proj.weight"].t()),
                                   params["o_proj.weight"].t());
    const int64_t first = std::min(s, n);
    auto y = scout->forward(x);
    EXPECT_LT(max_abs_diff(y.narrow(1, 0, first), own_value.narrow(1, 0, first)), kTolerance)
        << "S=" << s;
    if (first < n)  // and the first token after it already differs (it sees checkpoint S-1)
      EXPECT_GT(max_abs_diff(y.select(1, first), own_value.select(1, first)), 1e-6) << "S=" << s;
  }
}

// The closed form of the kept pairs at a length no test could loop over: Σ_{t<N} (1 + ⌊t/S⌋).
// (At lengths a mask can hold, MaskedAttention/checkpoint_attention.CostFlopsCountTheKeptPairs
// counts them from the mask.)
TEST(CheckpointAttention, KeptPairsClosedFormAtALongLength) {
  const int64_t n = 1000003, s = 7;
  double direct = 0;
  for (int64_t t = 0; t < n; ++t) direct += 1 + t / s;
  EXPECT_DOUBLE_EQ(checkpoint_pairs(n, s), direct);
}

}  // namespace
}  // namespace mixlab
