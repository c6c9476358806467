// The q, k, v projections of one token with RoPE and the cache write, rope_linear_into_cache
// (attention/kv_cache.h), on the weight with each head's rotation halves paired (pair_rope_halves):
// on the CPU against the unpaired product followed by rope_into_cache, in float64 (a pairing off by
// one row or block moves values between dims and misses by their size); on CUDA its kernel
// (attention/cuda/rope_linear_into_cache.cu) against that float64 path from the same bf16 values,
// head dims 32, 64 and 128.  Every cache slot but the one written must keep its value.

#include "attention/kv_cache.h"
#include "attention/rope.h"
#include "core/implementation.h"
#include "tests/input_norm_reference.h"

#include <gtest/gtest.h>

#include <string>

namespace MIXLAB_UNITY_ID {

constexpr int64_t kCapacity = 40, kSlots = 6;

struct Case {
  int64_t batch, heads, head_dim, d, position, slot;
};

// q' and the caches after one step, by the unpaired product and rope_into_cache, in float64 on
// the CPU from the given (possibly bf16) values.
struct StepResult {
  torch::Tensor q, keys, values;
};

StepResult unpaired_step(const Case& c, const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& cos,
                         const torch::Tensor& sin, const torch::Tensor& keys, const torch::Tensor& values) {
  auto as_double = [](const torch::Tensor& t) { return t.to(torch::kCPU, torch::kDouble); };
  StepResult r{{}, as_double(keys).clone(), as_double(values).clone()};
  const auto qkv = torch::matmul(as_double(x), as_double(weight).t()).view({c.batch, 3, c.heads, 1, c.head_dim});
  const auto index = [](int64_t v) { return torch::full({1}, v, torch::kLong); };
  r.q = mixlab::rope_into_cache(qkv, index(c.position), as_double(cos), as_double(sin), index(c.slot), r.keys, r.values);
  return r;
}

TEST(RopeLinearIntoCache, OnTheCpuThePairedWeightEqualsTheProductThenRopeIntoCache) {
  torch::manual_seed(8);
  const Case c{3, 2, 32, 24, 17, 4};
  const auto options = torch::TensorOptions().dtype(torch::kDouble);
  const auto x = torch::randn({c.batch, c.d}, options);
  const auto weight = torch::randn({3 * c.heads * c.head_dim, c.d}, options);
  const auto [cos, sin] = mixlab::rope_tables(torch::arange(kCapacity), c.head_dim, 1e4, options);
  const auto keys0 = torch::randn({c.batch, c.heads, kSlots, c.head_dim}, options), values0 = torch::randn_like(keys0);
  auto keys = keys0.clone(), values = values0.clone();
  mixlab::ImplementationLog log;
  const auto q = mixlab::rope_linear_into_cache(x, mixlab::pair_rope_halves(weight, c.heads, c.head_dim), c.heads,
                                                torch::full({1}, c.position, torch::kLong), cos, sin,
                                                torch::full({1}, c.slot, torch::kLong), keys, values);
  EXPECT_EQ(log.summary(), "apply_rope=reference, rope_into_cache=reference, rope_linear_into_cache=reference, skinny_linear=reference");
  const auto want = unpaired_step(c, x, weight, cos, sin, keys0, values0);
  EXPECT_LT((q - want.q).abs().max().item<double>(), 1e-12);
  EXPECT_LT((keys - want.keys).abs().max().item<double>(), 1e-12);
  EXPECT_LT((values - want.values).abs().max().item<double>(), 1e-12);
}

TEST(RopeLinearIntoCache, AHeadDimNotAMultipleOf16CannotBePaired) {
  EXPECT_THROW(mixlab::pair_rope_halves(torch::randn({3 * 2 * 24, 8}), 2, 24), c10::Error);
}

// bf16 rounds q, k, v and the rotated values (2^-9 relative each): within 2e-2 of 1 + |exact|;
// the slots not written are compared exactly.  Each case also with the norm folded into the product
// (core/input_norm.h), against the step on the float64 RMSNorm(x)·g.
TEST(RopeLinearIntoCache, TheKernelEqualsTheFloat64Step) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  torch::NoGradGuard no_grad;
  const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  for (const Case c : {Case{16, 12, 64, 768, 33, 5}, Case{3, 2, 32, 64, 0, 0}, Case{17, 4, 128, 256, 39, 3}})
  for (bool normed : {false, true}) {
    torch::manual_seed(c.batch * 3 + c.head_dim);
    const std::string what = std::string(normed ? "normed, " : "") + "B " + std::to_string(c.batch) + ", H " +
                             std::to_string(c.heads) + ", d_h " + std::to_string(c.head_dim);
    const auto x = torch::randn({c.batch, c.d}, bf16) * (normed ? 3.0 : 1.0);
    const auto norm = normed ? mixlab::testing::random_input_norm(c.d, bf16) : mixlab::InputNorm{};
    const auto weight = torch::randn({3 * c.heads * c.head_dim, c.d}, bf16) / std::sqrt(static_cast<double>(c.d));
    const auto [cos, sin] = mixlab::rope_tables(torch::arange(kCapacity, torch::TensorOptions().dtype(torch::kLong).device(torch::kCUDA)),
                                                c.head_dim, 1e4, bf16);
    const auto keys0 = torch::randn({c.batch, c.heads, kSlots, c.head_dim}, bf16), values0 = torch::randn_like(keys0);
    auto keys = keys0.clone(), values = values0.clone();
    const auto index = [](int64_t v) { return torch::full({1}, v, torch::TensorOptions().dtype(torch::kLong).device(torch::kCUDA)); };
    mixlab::ImplementationLog log;
    const auto q = mixlab::rope_linear_into_cache(x, mixlab::pair_rope_halves(weight, c.heads, c.head_dim), c.heads,
                                                  index(c.position), cos, sin, index(c.slot), keys, values, norm);
    EXPECT_EQ(log.summary(), "rope_linear_into_cache=kernel") << what;
    const auto want = unpaired_step(c, normed ? mixlab::testing::normalised_float64(x, norm) : x, weight, cos, sin,
                                    keys0, values0);
    auto relative = [](const torch::Tensor& got, const torch::Tensor& exact) {
      return ((got.to(torch::kCPU, torch::kDouble) - exact).abs() / (1 + exact.abs())).max().item<double>();
    };
    EXPECT_LT(relative(q, want.q), 2e-2) << what << ": q";
    EXPECT_LT(relative(keys.select(2, c.slot), want.keys.select(2, c.slot)), 2e-2) << what << ": the key slot";
    EXPECT_LT(relative(values.select(2, c.slot), want.values.select(2, c.slot)), 2e-2) << what << ": the value slot";
    const auto others = torch::arange(kSlots).ne(c.slot).nonzero().squeeze(1).to(torch::kCUDA);
    EXPECT_TRUE(torch::equal(keys.index_select(2, others), keys0.index_select(2, others))) << what << ": other key slots";
    EXPECT_TRUE(torch::equal(values.index_select(2, others), values0.index_select(2, others))) << what << ": other value slots";
  }
}

}  // namespace MIXLAB_UNITY_ID
