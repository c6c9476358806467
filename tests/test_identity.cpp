// identity leaves its input unchanged, costs nothing and keeps no state.

#include "tests/zoo_helpers.h"

namespace mixlab {
namespace MIXLAB_UNITY_ID {
using namespace zoo_test;

TEST(Identity, LeavesInputUnchanged) {
  auto m = make_f64("identity", tiny_context());
  auto x = random_input(2, 9, 16);
  EXPECT_TRUE(torch::equal(m->forward(x), x));
  EXPECT_TRUE(torch::equal(run_steps(m, x), x));
  EXPECT_EQ(m->parameters().size(), 0u);
  auto cost = m->cost({2, 9, 8});
  EXPECT_EQ(cost.flops, 0);
  EXPECT_EQ(cost.matmul_flops, 0);
  EXPECT_EQ(cost.state_bytes, 0);
}

}  // namespace
}  // namespace mixlab
