// The wgmma building blocks of the sm90 attention kernels (attention/cuda/sm90/wgmma.cuh), through
// the one-tile kernel that uses each of them (tile_products.h), against float64 products:
//   S = Q Kᵀ       tests the swizzled K-major tiles, their descriptors, the k16 steps along a row
//                  and the accumulator layout;
//   O = bf16(S) V  tests the accumulator turned into the A register operand and the MN-major
//                  (transposed) V tile with its k16 steps across rows;
//   R = Qᵀ K       tests both shared-memory operands read MN-major (A transposed too).
// Skipped without a GPU, on a GPU that is not a Hopper, and in a build not for sm_90a.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "tests/gpu_test.h"
#ifdef MIXLAB_WITH_CUDA
#include "attention/cuda/kernels.h"
#endif

namespace MIXLAB_UNITY_ID {

#ifdef MIXLAB_WITH_CUDA
// max |got − want| / max |want|
double relative_max_error(const torch::Tensor& got, const torch::Tensor& want) {
  auto g = got.to(torch::kCPU).to(torch::kDouble);
  EXPECT_TRUE(torch::isfinite(g).all().item<bool>()) << "non-finite values (an unwritten output?)";
  return (g - want).abs().max().item<double>() / want.abs().max().item<double>();
}
#endif

TEST(Sm90TileProducts, BothProductsMatchFloat64) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  if (!mixlab::cuda::sm90_kernels_available()) GTEST_SKIP() << "skipped: not a Hopper, or not built for sm_90a";
  torch::manual_seed(7);
  // Distinct rows and columns everywhere, so a transposed, swapped or mis-swizzled tile shows.
  auto q = torch::randn({64, 64}).to(torch::kBFloat16), k = torch::randn({64, 64}).to(torch::kBFloat16);
  auto v = torch::randn({64, 64}).to(torch::kBFloat16);
  auto [s, o, r] = mixlab::cuda::sm90_tile_products(q.cuda(), k.cuda(), v.cuda());
  // The products of bf16 inputs are exact in float64; the kernel sums them in float32.
  auto s_want = torch::matmul(q.to(torch::kDouble), k.to(torch::kDouble).t());
  EXPECT_LT(relative_max_error(s, s_want), 1e-5) << "S = Q Kᵀ (SS product, K-major tiles)";
  // O's A operand is the kernel's own S rounded to bf16 (round to nearest even, as .to(bf16)).
  auto s_bf16 = s.to(torch::kCPU).to(torch::kBFloat16).to(torch::kDouble);
  auto o_want = torch::matmul(s_bf16, v.to(torch::kDouble));
  EXPECT_LT(relative_max_error(o, o_want), 1e-5) << "O = bf16(S) V (RS product, MN-major V)";
  auto r_want = torch::matmul(q.to(torch::kDouble).t(), k.to(torch::kDouble));
  EXPECT_LT(relative_max_error(r, r_want), 1e-5) << "R = Qᵀ K (SS product, A and B MN-major)";
#endif
}

TEST(Sm90TileProducts, RefusesWrongShapes) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  auto q = torch::zeros({64, 32}, torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA));
  EXPECT_THROW(mixlab::cuda::sm90_tile_products(q, q, q), c10::Error);
#endif
}

}  // namespace MIXLAB_UNITY_ID
