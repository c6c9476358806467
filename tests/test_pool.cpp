// pool against the equation  y_t = (1/m_t) Σ_{s=t-k+1}^{t} u_s − u_t,  m_t = min(k, t+1).

#include "tests/zoo_helpers.h"

namespace mixlab {
namespace MIXLAB_UNITY_ID {
using namespace zoo_test;

torch::Tensor reference(const torch::Tensor& x, int64_t k) {
  auto y = torch::zeros_like(x);
  for (int64_t t = 0; t < x.size(1); ++t) {
    auto sum = torch::zeros({x.size(0), x.size(2)}, x.options());
    int64_t count = 0;
    for (int64_t s = std::max<int64_t>(0, t - k + 1); s <= t; ++s, ++count) sum += x.select(1, s);
    y.select(1, t).copy_(sum / count - x.select(1, t));
  }
  return y;
}

TEST(Pool, MatchesWindowedMeanMinusInput) {
  auto x = random_input(2, 23, 16);
  for (int64_t k : {1, 3, 7, 20, 40}) {  // 20 and 40 take the running-sum path
    auto m = make_f64("pool", tiny_context(), {{"pool_size", k}});
    EXPECT_LT(max_abs_diff(m->forward(x), reference(x, k)), 1e-12) << "k " << k;
    EXPECT_LT(max_abs_diff(run_steps(m, x), reference(x, k)), 1e-12) << "k " << k;
  }
}

TEST(Pool, WindowOneIsZeroAndStateIsBounded) {
  auto x = random_input(1, 5, 16);
  EXPECT_LT(make_f64("pool", tiny_context(), {{"pool_size", int64_t{1}}})->forward(x).abs().max().item<double>(),
            1e-15);
  auto m = make_f64("pool", tiny_context(), {{"pool_size", int64_t{3}}});
  auto state = m->initial_state(1, x.options());
  for (int64_t t = 0; t < 5; ++t) m->step(x.select(1, t), state);
  EXPECT_EQ(state.bytes(), 2 * 16 * 8);  // (k−1)·d float64
  EXPECT_DOUBLE_EQ(m->cost({1, 5, 8}).state_bytes, 2 * 16 * 8);
  EXPECT_EQ(m->cost({1, 5, 8}).matmul_flops, 0);
}

}  // namespace
}  // namespace mixlab
