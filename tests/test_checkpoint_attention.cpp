// `checkpoint_attention` (SCOUT): the chunked forward against a naive float64 reference built
// straight from M[t, j] = (j == t) or (j mod S == S-1 and j < t); the attention set of every
// query read back through autograd; decode against forward; cost() against a direct count of
// pairs and of the matrix products actually issued; and the no-N×N memory bound.

#include "attention/checkpoint_attention.h"
#include "harness/flop_counter.h"
#include "core/registry.h"
#include "tests/attention_reference.h"
#include "tests/largest_allocation.h"

#include <gtest/gtest.h>

#include <set>

namespace mixlab {
namespace {

using testing::dense_mask;
using testing::masked_attention;
using testing::max_abs_diff;

constexpr double kTolerance = 1e-11;

bool scout_allows(int64_t t, int64_t j, int64_t s) {
  return j == t || (j % s == s - 1 && j < t);
}

torch::Tensor scout_mask(int64_t n, int64_t s) {
  return dense_mask(n, [&](int64_t t, int64_t j) { return scout_allows(t, j, s); });
}

MixerContext small_context(int64_t d_model = 32, int64_t n_heads = 4) {
  MixerContext context;
  context.d_model = d_model;
  context.n_heads = n_heads;
  context.init_std = 0.2;  // sharper attention than 0.02, so that masking errors show
  return context;
}

TokenMixerPtr make_scout(int64_t segment_size, const MixerContext& context,
                         int64_t query_block = 0) {
  auto mixer = Registry::global().create(
      "checkpoint_attention", context,
      {{"segment_size", segment_size}, {"query_block", query_block}});
  mixer->to(torch::kFloat64);
  return mixer;
}

TEST(CheckpointAttention, CoreMatchesDenseMaskReference) {
  torch::manual_seed(11);
  const int64_t n = 37;
  auto q = torch::randn({2, 3, n, 8}, torch::kFloat64);
  auto k = torch::randn({2, 3, n, 8}, torch::kFloat64);
  auto v = torch::randn({2, 3, n, 8}, torch::kFloat64);
  for (int64_t s : {1, 2, 3, 10, 36, 37, 50})
    for (int64_t block : {0, 1, 7, 64}) {
      auto expected = masked_attention(q, k, v, scout_mask(n, s));
      auto got = checkpoint_attention(q, k, v, s, block);
      EXPECT_LT(max_abs_diff(got, expected), kTolerance) << "S=" << s << " b=" << block;
    }
}

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
        if (scout_allows(t, j, s)) expected.insert(j);
      }
      EXPECT_EQ(seen, expected) << "S=" << s << " t=" << t;
      EXPECT_EQ(static_cast<int64_t>(seen.size()), 1 + t / s) << "S=" << s << " t=" << t;
    }
}

TEST(CheckpointAttention, MixerMatchesReferenceFromWeights) {
  torch::manual_seed(13);
  const int64_t n = 37;
  auto context = small_context();
  auto x = torch::randn({2, n, context.d_model}, torch::kFloat64);
  for (int64_t s : {1, 4, 10, 64}) {
    auto scout = make_scout(s, context);
    auto expected = testing::multi_head_reference(
        *scout, x, context.n_heads, 1e4, [&](const auto& q, const auto& k, const auto& v) {
          return masked_attention(q, k, v, scout_mask(n, s));
        });
    EXPECT_LT(max_abs_diff(scout->forward(x), expected), kTolerance) << "S=" << s;
  }
}

// Tokens of the first segment see only themselves: y_t = W_o W_v u_t.
TEST(CheckpointAttention, FirstSegmentOutputsItsOwnValue) {
  torch::manual_seed(14);
  const int64_t n = 25;
  auto context = small_context();
  auto x = torch::randn({2, n, context.d_model}, torch::kFloat64);
  for (int64_t s : {1, 10, 40}) {
    auto scout = make_scout(s, context);
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

TEST(CheckpointAttention, DecodeEqualsForwardAndCacheHoldsTheCheckpoints) {
  torch::manual_seed(15);
  const int64_t n = 23;
  auto context = small_context();
  auto x = torch::randn({2, n, context.d_model}, torch::kFloat64);
  for (int64_t s : {1, 3, 10, 50}) {
    auto scout = make_scout(s, context);
    torch::NoGradGuard no_grad;
    auto state = scout->initial_state(2, x.options());
    auto decoded = testing::decode_all(*scout, x, state);
    EXPECT_LT(max_abs_diff(decoded, scout->forward(x)), kTolerance) << "S=" << s;
    EXPECT_EQ(state.tensors.at("checkpoint_keys").size(2), n / s);
    EXPECT_DOUBLE_EQ(static_cast<double>(state.bytes()), scout->cost({2, n, 8}).state_bytes)
        << "S=" << s;
  }
}

TEST(CheckpointAttention, GradientsAreFiniteForEveryParameter) {
  torch::manual_seed(16);
  auto context = small_context();
  auto scout = make_scout(3, context, /*query_block=*/4);
  auto x = torch::randn({2, 21, context.d_model}, torch::kFloat64).requires_grad_(true);
  scout->forward(x).pow(2).sum().backward();
  for (const auto& item : scout->named_parameters()) {
    const auto& grad = item.value().grad();
    ASSERT_TRUE(grad.defined()) << item.key();
    EXPECT_TRUE(torch::isfinite(grad).all().item<bool>()) << item.key();
    EXPECT_GT(grad.abs().sum().item<double>(), 0.0) << item.key();
  }
  EXPECT_TRUE(torch::isfinite(x.grad()).all().item<bool>());
}

TEST(CheckpointAttention, CostFlopsCountTheKeptPairs) {
  auto context = small_context();
  for (int64_t n : {1, 9, 10, 11, 37, 100})
    for (int64_t s : {1, 3, 10, 200}) {
      auto scout = make_scout(s, context);
      const double pairs = scout_mask(n, s).sum().item<double>();  // ones of the mask
      const double b = 3, d = context.d_model;
      const auto cost = scout->cost({3, n, 8});
      EXPECT_DOUBLE_EQ(cost.flops, 8 * b * n * d * d + 4 * d * b * pairs) << n << " " << s;
      EXPECT_DOUBLE_EQ(cost.state_bytes, 2 * b * (n / s) * d * 8);
    }
  // The closed form also at a length no test could loop over: Σ_{t<N} (1 + ⌊t/S⌋).
  const int64_t n = 1000003, s = 7;
  double direct = 0;
  for (int64_t t = 0; t < n; ++t) direct += 1 + t / s;
  EXPECT_DOUBLE_EQ(checkpoint_pairs(n, s), direct);
}

TEST(CheckpointAttention, MatmulFlopsEqualTheProductsTheForwardIssues) {
  torch::manual_seed(17);
  auto context = small_context();
  for (int64_t n : {1, 16, 37})
    for (int64_t s : {1, 4, 10, 50})
      for (int64_t block : {0, 5}) {
        auto scout = make_scout(s, context, block);
        auto x = torch::randn({2, n, context.d_model}, torch::kFloat64);
        FlopCounter counter;
        scout->forward(x);
        EXPECT_DOUBLE_EQ(counter.matmul_flops(), scout->cost({2, n, 8}).matmul_flops)
            << "N=" << n << " S=" << s << " b=" << block;
      }
}

// N = 4096, d = 32: the largest buffer is one block's logits, B·H·b·(1 + ⌊(N-1)/S⌋) entries, or
// an [B, N, d] activation; one head's N×N would be 32× the former.
TEST(CheckpointAttention, LongSequenceNeverAllocatesNxN) {
  torch::manual_seed(18);
  const int64_t n = 4096, s = 10, batch = 1;
  auto context = small_context(32, 2);
  auto scout = make_scout(s, context);
  auto x = torch::randn({batch, n, context.d_model}, torch::kFloat64);
  const auto plan = plan_checkpoint_attention(n, s);
  size_t largest = 0;
  {
    testing::LargestCpuAllocation probe;
    auto y = scout->forward(x);
    largest = probe.largest_bytes();
    EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
  }
  const size_t block_logits =
      static_cast<size_t>(batch * context.n_heads * plan.query_block * (1 + (n - 1) / s));
  const size_t activation = static_cast<size_t>(batch * n * context.d_model);
  EXPECT_LE(largest, std::max(block_logits, activation) * sizeof(double));
  EXPECT_GE(largest, activation * sizeof(double));  // the probe is live
  EXPECT_LT(largest, static_cast<size_t>(n) * n * sizeof(double) / 8);
}

TEST(CheckpointAttention, RejectsSegmentSizeZero) {
  EXPECT_THROW(Registry::global().resolve("checkpoint_attention", {{"segment_size", int64_t{0}}}),
               RegistryError);
}

}  // namespace
}  // namespace mixlab
