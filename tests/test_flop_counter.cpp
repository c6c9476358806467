// The FLOP counter itself, against products whose work is known by construction.

#include "harness/flop_counter.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

TEST(FlopCounter, CountsMatrixProductsOnce) {
  auto a = torch::randn({5, 7}), b = torch::randn({7, 3});
  FlopCounter counter;
  torch::mm(a, b);
  EXPECT_DOUBLE_EQ(counter.matmul_flops(), 2.0 * 5 * 7 * 3);
}

TEST(FlopCounter, CountsLinearAndBatchedMatmulThroughTheirLeaves) {
  torch::nn::Linear linear(torch::nn::LinearOptions(8, 4).bias(false));
  auto x = torch::randn({2, 6, 8});
  auto q = torch::randn({2, 3, 6, 5}), k = torch::randn({2, 3, 5, 6});
  FlopCounter counter;
  linear(x);                 // 2·(2·6)·8·4
  torch::matmul(q, k);       // 2·(2·3)·6·5·6
  EXPECT_DOUBLE_EQ(counter.matmul_flops(), 2.0 * 12 * 8 * 4 + 2.0 * 6 * 6 * 5 * 6);
}

TEST(FlopCounter, IgnoresElementwiseWorkAndStopsWhenDestroyed) {
  auto a = torch::randn({64, 64});
  {
    FlopCounter counter;
    auto b = a * a + a.exp();
    EXPECT_DOUBLE_EQ(counter.matmul_flops(), 0.0);
    EXPECT_GT(counter.calls().size(), 0u);
  }
  FlopCounter later;
  EXPECT_DOUBLE_EQ(later.matmul_flops(), 0.0);
}

}  // namespace
}  // namespace mixlab
