// gated_cnn against  y = W_2(GELU(g) ⊙ [i, b + Σ_j w_j ⊙ c_{t-(k-1-j)}]) + b_2,  [g,i,c] = W_1 u + b_1.

#include "tests/zoo_helpers.h"

#include <cmath>

namespace mixlab {
namespace MIXLAB_UNITY_ID {
using namespace zoo_test;

TEST(GatedCnn, MatchesCausalGatedConvolutionBlock) {
  auto m = make_f64("gated_cnn", tiny_context(), {{"kernel_size", int64_t{4}}, {"conv_ratio", 0.5}});
  EXPECT_EQ(Registry::global().at("gated_cnn").kind, MixerKind::Block);
  const int64_t h = static_cast<int64_t>(8.0 / 3.0 * 16), cch = 8, k = 4;
  auto x = random_input(2, 11, 16);
  auto z = torch::matmul(x, weight(m, "fc1.weight").t()) + weight(m, "fc1.bias");
  auto g = z.narrow(-1, 0, h), i = z.narrow(-1, h, h - cch), c = z.narrow(-1, 2 * h - cch, cch);
  auto w = weight(m, "conv_weight").squeeze(1);  // [c_ch, k]
  auto conv = torch::zeros_like(c) + weight(m, "conv_bias");
  for (int64_t t = 0; t < 11; ++t)
    for (int64_t j = 0; j < k; ++j)
      if (t - (k - 1 - j) >= 0) conv.select(1, t) += w.select(1, j) * c.select(1, t - (k - 1 - j));
  auto gelu = 0.5 * g * (1 + torch::erf(g / std::sqrt(2.0)));
  auto expected = torch::matmul(gelu * torch::cat({i, conv}, -1), weight(m, "fc2.weight").t()) +
                  weight(m, "fc2.bias");
  EXPECT_LT(max_abs_diff(m->forward(x), expected), 1e-12);
  EXPECT_LT(max_abs_diff(run_steps(m, x), expected), 1e-12);

  auto cost = m->cost({2, 11, 8});
  const double tokens = 22;
  EXPECT_DOUBLE_EQ(cost.matmul_flops, 2 * tokens * 16 * 2 * h + 2 * tokens * h * 16);
  EXPECT_DOUBLE_EQ(cost.state_bytes, 2 * (k - 1) * cch * 8.0);
}

TEST(GatedCnn, RejectsMoreConvChannelsThanHidden) {
  EXPECT_THROW(Registry::global().create("gated_cnn", tiny_context(), {{"conv_ratio", 3.0}}), RegistryError);
}

}  // namespace
}  // namespace mixlab
