// sepconv against  y_t = W_2 Σ_{i<k} w_{:,i} ⊙ StarReLU(W_1 u_{t-(k-1-i)})  (zeros before the start).

#include "tests/zoo_helpers.h"

namespace mixlab {
namespace MIXLAB_UNITY_ID {
using namespace zoo_test;

torch::Tensor reference(const TokenMixerPtr& m, const torch::Tensor& x) {
  auto w1 = weight(m, "pwconv1.weight"), w2 = weight(m, "pwconv2.weight");
  auto kernel = weight(m, "dwconv_weight").squeeze(1);  // [E, k]
  const double s = weight(m, "star_scale").item<double>(), b = weight(m, "star_bias").item<double>();
  auto a = torch::matmul(x, w1.t());
  a = s * torch::relu(a).square() + b;                  // [B, N, E]
  const int64_t n = x.size(1), k = kernel.size(1);
  auto c = torch::zeros_like(a);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < k; ++i) {
      const int64_t source = t - (k - 1 - i);
      if (source >= 0) c.select(1, t) += kernel.select(1, i) * a.select(1, source);
    }
  return torch::matmul(c, w2.t());
}

TEST(SepConv, MatchesCausalSeparableConvolution) {
  auto m = make_f64("sepconv", tiny_context(), {{"kernel_size", int64_t{5}}});
  auto x = random_input(2, 12, 16);
  EXPECT_LT(max_abs_diff(m->forward(x), reference(m, x)), 1e-12);
  EXPECT_LT(max_abs_diff(run_steps(m, x), reference(m, x)), 1e-12);
}

TEST(SepConv, CostCountsBothPointwiseProducts) {
  auto m = make_f64("sepconv", tiny_context(), {{"kernel_size", int64_t{5}}, {"expansion", 2.0}});
  const double tokens = 2 * 12, d = 16, e = 32;
  auto cost = m->cost({2, 12, 8});
  EXPECT_DOUBLE_EQ(cost.matmul_flops, 2 * tokens * d * e + 2 * tokens * e * d);
  EXPECT_DOUBLE_EQ(cost.state_bytes, 2 * 4 * e * 8);
  auto state = m->initial_state(2, torch::TensorOptions().dtype(torch::kFloat64));
  EXPECT_EQ(state.bytes(), 2 * 4 * 32 * 8);
}

}  // namespace
}  // namespace mixlab
