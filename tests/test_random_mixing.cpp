// random_mixing: the frozen matrix is causal, row-stochastic over the prefix, deterministic and not
// trained; the output is Σ_{s≤t} R_{ts} u_s.

#include "tests/zoo_helpers.h"

namespace mixlab {
namespace MIXLAB_UNITY_ID {
using namespace zoo_test;

TEST(RandomMixing, FrozenCausalRowStochasticMatrix) {
  auto m = make_f64("random_mixing", tiny_context(), {{"max_len", int64_t{32}}});
  EXPECT_EQ(m->parameters().size(), 0u);  // a buffer, never trained
  auto r = weight(m, "mixing");
  ASSERT_EQ(r.sizes(), (std::vector<int64_t>{32, 32}));
  EXPECT_EQ(r.triu(1).abs().max().item<double>(), 0.0);
  EXPECT_LT((r.sum(1) - 1).abs().max().item<double>(), 1e-6);
  for (int64_t t = 1; t < 32; ++t) {  // weights within a row differ by at most a factor e
    auto row = r[t].narrow(0, 0, t + 1);
    EXPECT_LE((row.max() / row.min()).item<double>(), std::exp(1.0) + 1e-5);
    EXPECT_GT((row.max() / row.min()).item<double>(), 1.0);
  }
  auto again = make_f64("random_mixing", tiny_context(), {{"max_len", int64_t{32}}});
  EXPECT_TRUE(torch::equal(weight(again, "mixing"), r));
  auto other = make_f64("random_mixing", tiny_context(), {{"max_len", int64_t{32}}, {"seed", int64_t{1}}});
  EXPECT_FALSE(torch::equal(weight(other, "mixing"), r));
}

TEST(RandomMixing, OutputIsPrefixWeightedSum) {
  auto m = make_f64("random_mixing", tiny_context(), {{"max_len", int64_t{32}}});
  auto r = weight(m, "mixing");
  auto x = random_input(2, 10, 16);
  auto expected = torch::zeros_like(x);
  for (int64_t t = 0; t < 10; ++t)
    for (int64_t s = 0; s <= t; ++s) expected.select(1, t) += r[t][s].item<double>() * x.select(1, s);
  EXPECT_LT(max_abs_diff(m->forward(x), expected), 1e-12);
  EXPECT_LT(max_abs_diff(run_steps(m, x), expected), 1e-12);
  EXPECT_DOUBLE_EQ(m->cost({2, 10, 8}).matmul_flops, 2.0 * 2 * 10 * 10 * 16);
  EXPECT_THROW(m->forward(random_input(1, 33, 16)), std::invalid_argument);
}

}  // namespace
}  // namespace mixlab
