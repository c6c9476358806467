// What every masked attention scheme (tests/masked_schemes.h: swa, checkpoint_attention, and
// attention itself) shares, typed over the schemes:
//   - the mixer equals multi-head attention under its dense float64 mask, from its own weights;
//   - decoding token by token equals the forward, and the decode state holds the kept keys only,
//     its bytes equal to cost().state_bytes;
//   - gradients reach every parameter;
//   - cost().flops counts the kept pairs, the ones of the mask: 8·B·N·d² + 4·d·B·Σ M[t, j];
// and, for the schemes with a blockwise core of their own (swa, checkpoint_attention):
//   - the core equals the dense-mask reference for every query block;
//   - cost().matmul_flops equals the matrix products the forward issues (counted);
//   - a long sequence never allocates an N×N buffer;
//   - a size of 0 is rejected.
// Each scheme's own tests stay beside it (tests/test_swa.cpp, tests/test_checkpoint_attention.cpp).

#include "harness/flop_counter.h"
#include "tests/largest_allocation.h"
#include "tests/masked_schemes.h"

#include <gtest/gtest.h>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

using namespace testing;

constexpr double kTolerance = 1e-11;

// Test names that say the scheme: MaskedAttention/swa.CostFlopsCountTheKeptPairs.
struct SchemeName {
  template <class Scheme>
  static std::string GetName(int) {
    return Scheme::kName;
  }
};

template <class Scheme>
class MaskedAttention : public ::testing::Test {};
using MaskedSchemes = ::testing::Types<SlidingWindowScheme, CheckpointScheme, CausalScheme>;
TYPED_TEST_SUITE(MaskedAttention, MaskedSchemes, SchemeName);

TYPED_TEST(MaskedAttention, MixerMatchesReferenceFromWeights) {
  using Scheme = TypeParam;
  torch::manual_seed(Scheme::kSeedBase + 3);
  const int64_t n = 37;
  auto context = masked_attention_context();
  auto x = torch::randn({2, n, context.d_model}, torch::kFloat64);
  for (int64_t size : Scheme::kMixerSizes) {
    TokenMixerPtr mixer = make_scheme<Scheme>(size, context);
    auto expected = multi_head_reference(
        *mixer, x, context.n_heads, 1e4, [&](const auto& q, const auto& k, const auto& v) {
          return masked_attention(q, k, v, scheme_mask<Scheme>(n, size));
        });
    EXPECT_LT(max_abs_diff(mixer->forward(x), expected), kTolerance) << "size " << size;
  }
}

TYPED_TEST(MaskedAttention, DecodeEqualsForwardAndCacheHoldsTheKeptKeys) {
  using Scheme = TypeParam;
  torch::manual_seed(Scheme::kSeedBase + 5);
  const int64_t n = 23;
  auto context = masked_attention_context();
  auto x = torch::randn({2, n, context.d_model}, torch::kFloat64);
  for (int64_t size : Scheme::kDecodeSizes) {
    TokenMixerPtr mixer = make_scheme<Scheme>(size, context);
    torch::NoGradGuard no_grad;
    auto state = mixer->initial_state(2, x.options());
    auto decoded = decode_all(*mixer, x, state);
    EXPECT_LT(max_abs_diff(decoded, mixer->forward(x)), kTolerance) << "size " << size;
    EXPECT_EQ(state.position, n);
    EXPECT_EQ(state.tensors.at(Scheme::kCachedKeys).size(2), Scheme::cached_tokens(n, size)) << "size " << size;
    EXPECT_DOUBLE_EQ(static_cast<double>(state.bytes()), mixer->cost({2, n, 8}).state_bytes) << "size " << size;
  }
}

TYPED_TEST(MaskedAttention, GradientsAreFiniteForEveryParameter) {
  using Scheme = TypeParam;
  torch::manual_seed(Scheme::kSeedBase + 6);
  auto context = masked_attention_context();
  TokenMixerPtr mixer = make_scheme<Scheme>(Scheme::kGradientSize, context, /*query_block=*/4);
  auto x = torch::randn({2, 21, context.d_model}, torch::kFloat64).requires_grad_(true);
  mixer->forward(x).pow(2).sum().backward();
  for (const auto& item : mixer->named_parameters()) {
    const auto& grad = item.value().grad();
    ASSERT_TRUE(grad.defined()) << item.key();
    EXPECT_TRUE(torch::isfinite(grad).all().item<bool>()) << item.key();
    EXPECT_GT(grad.abs().sum().item<double>(), 0.0) << item.key();
  }
  EXPECT_TRUE(torch::isfinite(x.grad()).all().item<bool>());
}

TYPED_TEST(MaskedAttention, CostFlopsCountTheKeptPairs) {
  using Scheme = TypeParam;
  auto context = masked_attention_context();
  for (int64_t n : Scheme::kCostLengths)
    for (int64_t size : Scheme::kCostSizes) {
      TokenMixerPtr mixer = make_scheme<Scheme>(size, context);
      const torch::Tensor mask = scheme_mask<Scheme>(n, size);
      const double pairs = mask.sum().item<double>();  // ones of the mask
      const double b = 3, d = context.d_model;
      const auto cost = mixer->cost({3, n, 8});
      EXPECT_DOUBLE_EQ(cost.flops, 8 * b * n * d * d + 4 * d * b * pairs) << n << " " << size;
      EXPECT_DOUBLE_EQ(cost.state_bytes, 2 * b * Scheme::cached_tokens(n, size) * d * 8) << n << " " << size;
    }
}

template <class Scheme>
class BlockwiseMaskedCore : public ::testing::Test {};
using BlockwiseSchemes = ::testing::Types<SlidingWindowScheme, CheckpointScheme>;
TYPED_TEST_SUITE(BlockwiseMaskedCore, BlockwiseSchemes, SchemeName);

TYPED_TEST(BlockwiseMaskedCore, CoreMatchesDenseMaskReference) {
  using Scheme = TypeParam;
  torch::manual_seed(Scheme::kSeedBase + 1);
  const int64_t n = 37;
  auto q = torch::randn({2, 3, n, 8}, torch::kFloat64);
  auto k = torch::randn({2, 3, n, 8}, torch::kFloat64);
  auto v = torch::randn({2, 3, n, 8}, torch::kFloat64);
  for (int64_t size : Scheme::kCoreSizes)
    for (int64_t block : {0, 1, 7, 64}) {
      auto expected = masked_attention(q, k, v, scheme_mask<Scheme>(n, size));
      auto got = Scheme::core(q, k, v, size, block);
      EXPECT_LT(max_abs_diff(got, expected), kTolerance) << "size " << size << " b=" << block;
    }
}

TYPED_TEST(BlockwiseMaskedCore, MatmulFlopsEqualTheProductsTheForwardIssues) {
  using Scheme = TypeParam;
  torch::manual_seed(Scheme::kSeedBase + 7);
  auto context = masked_attention_context();
  for (int64_t n : {1, 16, 37})
    for (int64_t size : Scheme::kMatmulSizes)
      for (int64_t block : {0, 5}) {
        TokenMixerPtr mixer = make_scheme<Scheme>(size, context, block);
        auto x = torch::randn({2, n, context.d_model}, torch::kFloat64);
        FlopCounter counter;
        mixer->forward(x);
        EXPECT_DOUBLE_EQ(counter.matmul_flops(), mixer->cost({2, n, 8}).matmul_flops)
            << "N=" << n << " size " << size << " b=" << block;
      }
}

// N = 4096, d = 32, batch 1: the largest buffer stays within the scheme's bound
// (Scheme::largest_buffer_bound), at least the [1, N, d] activation (the probe is live), and far
// below one head's N×N (the test fails if any N×N buffer is made).
TYPED_TEST(BlockwiseMaskedCore, LongSequenceNeverAllocatesNxN) {
  using Scheme = TypeParam;
  torch::manual_seed(Scheme::kSeedBase + 8);
  const int64_t n = 4096, size = Scheme::kLongSize;
  auto context = masked_attention_context(32, 2);
  TokenMixerPtr mixer = make_scheme<Scheme>(size, context);
  auto x = torch::randn({1, n, context.d_model}, torch::kFloat64);
  size_t largest = 0;
  {
    LargestCpuAllocation probe;
    auto y = mixer->forward(x);
    largest = probe.largest_bytes();
    EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
  }
  EXPECT_LE(largest, Scheme::largest_buffer_bound(n, size, context));
  EXPECT_GE(largest, static_cast<size_t>(n * context.d_model) * sizeof(double));
  EXPECT_LT(largest, static_cast<size_t>(n) * n * sizeof(double) / Scheme::kNxNFraction);
}

TYPED_TEST(BlockwiseMaskedCore, RejectsSizeZero) {
  using Scheme = TypeParam;
  EXPECT_THROW(Registry::global().resolve(Scheme::kName, {{Scheme::kSizeParam, int64_t{0}}}), RegistryError);
}

}  // namespace
}  // namespace mixlab
