// The few-row linear (core/skinny_linear.h: core/cuda/skinny_linear.cu on CUDA, at::linear
// elsewhere) against y = x Wᵀ + b computed in float64 on the CPU from the same bf16 values.
// Shapes cover the kernel's edges: rows within one 16-row tile, beyond it and up to its limit;
// outputs not a multiple of the 8- or 16-output tiles; in below one 128-wide super-chunk and not a
// multiple of it; x as a column slice (Mamba's Δ reads the first R columns of x_proj's output).
// The normed product (core/input_norm.h) against the float64 norm then product; the product with
// the residual add as its store (skinny_linear_add) against the two ops.  The CUDA tests skip
// without a GPU.

#include "core/implementation.h"
#include "core/skinny_linear.h"
#include "tests/input_norm_reference.h"

#include <gtest/gtest.h>

namespace MIXLAB_UNITY_ID {

using mixlab::ImplementationLog;
using mixlab::skinny_linear;

// y = x Wᵀ + b in float64 on the CPU.
torch::Tensor reference(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  auto y = torch::matmul(x.to(torch::kCPU, torch::kDouble), w.to(torch::kCPU, torch::kDouble).t());
  return b.defined() ? y + b.to(torch::kCPU, torch::kDouble) : y;
}

// The kernel sums in float32 and rounds y to bf16 once: |y − exact| <= 2^-8 |exact| (the rounding)
// + 1e-5 Σ_k |x_k w_k| (float32 sums) + |b| 2^-8, element by element; plus operand_rounding
// Σ_k |x_k w_k| where the kernel rounds its A operand (a normed product: bf16(h·g), 2^-9 relative).
void expect_close(const torch::Tensor& got, const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b,
                  const std::string& what, double operand_rounding = 0.0) {
  const auto exact = reference(x, w, b);
  auto magnitude = torch::matmul(x.to(torch::kCPU, torch::kDouble).abs(), w.to(torch::kCPU, torch::kDouble).abs().t());
  auto bound = exact.abs() * std::ldexp(1.0, -8) + magnitude * (1e-5 + operand_rounding) + 1e-30;
  if (b.defined()) bound = bound + b.to(torch::kCPU, torch::kDouble).abs() * std::ldexp(1.0, -8);
  const auto error = (got.to(torch::kCPU, torch::kDouble) - exact).abs();
  ASSERT_EQ(got.sizes(), exact.sizes()) << what;
  EXPECT_TRUE((error <= bound).all().item<bool>())
      << what << ": worst error " << error.max().item<double>() << ", worst ratio to the bound "
      << (error / bound).max().item<double>();
}

TEST(SkinnyLinear, OnTheCpuItIsTheLibraryProduct) {
  torch::manual_seed(3);
  const auto x = torch::randn({5, 24}, torch::kDouble), w = torch::randn({7, 24}, torch::kDouble);
  const auto b = torch::randn({7}, torch::kDouble);
  ImplementationLog log;
  const auto y = skinny_linear(x, w, b);
  EXPECT_EQ(log.summary(), "skinny_linear=reference");
  EXPECT_LT((y - reference(x, w, b)).abs().max().item<double>(), 1e-12);
  EXPECT_LT((skinny_linear(x, w) - reference(x, w, {})).abs().max().item<double>(), 1e-12);
}

TEST(SkinnyLinear, TheKernelEqualsTheFloat64Product) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  torch::NoGradGuard no_grad;
  const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  struct Shape {
    int64_t rows, in, out;
  };
  // rows: one, a partial tile, one tile, a second tile, the limit; in: one vector, below and not a
  // multiple of 128, past 1024 (16-warp blocks: one super-chunk per warp, two for some, three for
  // one); out: below one tile, not a multiple of 8 or 16, large enough for 2-tile blocks.
  for (const Shape s : {Shape{1, 8, 5}, Shape{5, 64, 13}, Shape{16, 200, 96}, Shape{17, 1024, 1000},
                        Shape{40, 328, 4100}, Shape{64, 2048, 129}, Shape{9, 1024, 8192}, Shape{16, 2816, 1024},
                        Shape{3, 4104, 40}, Shape{20, 1032, 4480}}) {
    for (bool with_bias : {false, true}) {
      torch::manual_seed(s.rows * 131 + s.out);
      const auto x = torch::randn({s.rows, s.in}, bf16), w = torch::randn({s.out, s.in}, bf16) * 0.05;
      const auto b = with_bias ? torch::randn({s.out}, bf16) : torch::Tensor();
      const std::string what = "rows " + std::to_string(s.rows) + ", in " + std::to_string(s.in) + ", out " +
                               std::to_string(s.out) + (with_bias ? ", bias" : "");
      ImplementationLog log;
      const auto y = skinny_linear(x, w, b);
      EXPECT_EQ(log.summary(), "skinny_linear=kernel") << what;
      EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
      expect_close(y, x, w, b, what);
    }
  }
}

TEST(SkinnyLinear, OnTheCpuTheNormedProductIsTheNormThenTheProduct) {
  torch::manual_seed(4);
  const auto h = torch::randn({5, 24}, torch::kDouble) * 3.0, w = torch::randn({7, 24}, torch::kDouble);
  const auto b = torch::randn({7}, torch::kDouble);
  const auto norm = mixlab::testing::random_input_norm(24, torch::kDouble);
  ImplementationLog log;
  const auto y = skinny_linear(h, w, b, norm);
  EXPECT_EQ(log.summary(), "skinny_linear=reference");
  EXPECT_LT((y - reference(mixlab::testing::normalised_float64(h, norm), w, b)).abs().max().item<double>(), 1e-12);
}

// Rows of h at several scales (the norm must divide each by its own RMS), the shapes of the plain
// test that cover 8 and 16 warps, one and two tiles, partial row tiles and in not a multiple of 128.
TEST(SkinnyLinear, TheNormedKernelEqualsTheFloat64NormThenProduct) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  torch::NoGradGuard no_grad;
  const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  struct Shape {
    int64_t rows, in, out;
  };
  for (const Shape s : {Shape{1, 8, 5}, Shape{5, 200, 13}, Shape{17, 1024, 1000}, Shape{40, 328, 4100},
                        Shape{16, 2816, 1024}, Shape{20, 1032, 4480}, Shape{9, 1024, 8192}}) {
    for (bool with_bias : {false, true}) {
      torch::manual_seed(s.rows * 17 + s.out);
      const auto scales = torch::logspace(-2, 2, s.rows, 10.0, bf16.dtype(torch::kFloat)).unsqueeze(1);
      const auto h = (torch::randn({s.rows, s.in}, bf16.dtype(torch::kFloat)) * scales).to(torch::kBFloat16);
      const auto w = torch::randn({s.out, s.in}, bf16) * 0.05;
      const auto b = with_bias ? torch::randn({s.out}, bf16) : torch::Tensor();
      const auto norm = mixlab::testing::random_input_norm(s.in, bf16);
      const std::string what = "normed, rows " + std::to_string(s.rows) + ", in " + std::to_string(s.in) + ", out " +
                               std::to_string(s.out) + (with_bias ? ", bias" : "");
      ImplementationLog log;
      const auto y = skinny_linear(h, w, b, norm);
      EXPECT_EQ(log.summary(), "skinny_linear=kernel") << what;
      expect_close(y, mixlab::testing::normalised_float64(h, norm), w, b, what, std::ldexp(1.0, -8));
    }
  }
}

TEST(SkinnyLinear, OnTheCpuTheAddedProductIsTheResidualPlusTheProduct) {
  torch::manual_seed(6);
  const auto x = torch::randn({5, 24}, torch::kDouble), w = torch::randn({7, 24}, torch::kDouble);
  const auto b = torch::randn({7}, torch::kDouble), r = torch::randn({5, 7}, torch::kDouble);
  ImplementationLog log;
  const auto y = mixlab::skinny_linear_add(r, x, w, b);
  EXPECT_EQ(log.summary(), "skinny_linear=reference, skinny_linear_add=reference");
  EXPECT_LT((y - (r + reference(x, w, b))).abs().max().item<double>(), 1e-12);
}

// The store rounds as the two ops do (the product to bf16, then the sum), so the kernel equals the
// product kernel followed by a bf16 add bit for bit; and the float64 residual plus product within
// the product's bound plus the sum's rounding.
TEST(SkinnyLinear, TheAddKernelEqualsTheProductKernelThenTheAdd) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  torch::NoGradGuard no_grad;
  const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  struct Shape {
    int64_t rows, in, out;
  };
  for (const Shape s : {Shape{1, 8, 5}, Shape{17, 1024, 1000}, Shape{16, 2048, 1024}, Shape{40, 328, 4100}}) {
    for (bool with_bias : {false, true}) {
      torch::manual_seed(s.rows * 5 + s.out);
      const auto x = torch::randn({s.rows, s.in}, bf16), w = torch::randn({s.out, s.in}, bf16) * 0.05;
      const auto b = with_bias ? torch::randn({s.out}, bf16) : torch::Tensor();
      const auto r = torch::randn({s.rows, s.out}, bf16) * 4.0;
      const std::string what = "add, rows " + std::to_string(s.rows) + ", in " + std::to_string(s.in) + ", out " +
                               std::to_string(s.out) + (with_bias ? ", bias" : "");
      ImplementationLog log;
      const auto y = mixlab::skinny_linear_add(r, x, w, b);
      EXPECT_EQ(log.summary(), "skinny_linear_add=kernel") << what;
      EXPECT_TRUE(torch::equal(y, r + skinny_linear(x, w, b))) << what << ": not the two ops bit for bit";
      const auto exact = reference(x, w, b) + r.to(torch::kCPU, torch::kDouble);
      const auto magnitude =
          torch::matmul(x.to(torch::kCPU, torch::kDouble).abs(), w.to(torch::kCPU, torch::kDouble).abs().t());
      auto bound = (exact.abs() + reference(x, w, b).abs()) * std::ldexp(1.0, -8) + magnitude * 1e-5 + 1e-30;
      if (with_bias) bound = bound + b.to(torch::kCPU, torch::kDouble).abs() * std::ldexp(1.0, -8);
      const auto error = (y.to(torch::kCPU, torch::kDouble) - exact).abs();
      EXPECT_TRUE((error <= bound).all().item<bool>()) << what << ": worst ratio to the bound "
                                                       << (error / bound).max().item<double>();
    }
  }
}

TEST(SkinnyLinear, TheKernelReadsAColumnSliceOfX) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  torch::NoGradGuard no_grad;
  const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  torch::manual_seed(5);
  const auto wide = torch::randn({16, 96}, bf16);                // x_proj's [B, R + 2n]
  const auto x = wide.narrow(1, 0, 64), w = torch::randn({2048, 64}, bf16);  // Δ = x[:, :R] W_dtᵀ
  ImplementationLog log;
  const auto y = skinny_linear(x, w);
  EXPECT_EQ(log.summary(), "skinny_linear=kernel");
  expect_close(y, x, w, {}, "x a [16, 64] slice of [16, 96]");
}

TEST(SkinnyLinear, WhatTheKernelDoesNotTakeRunsTheLibraryProduct) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  torch::manual_seed(7);
  const auto w = torch::randn({32, 64}, bf16);
  // a gradient wanted, float32, too many rows, in not a multiple of 8
  const auto wants_grad = torch::randn({4, 64}, bf16).requires_grad_(true);
  const auto float32 = torch::randn({4, 64}, bf16.dtype(torch::kFloat));
  const auto many = torch::randn({65, 64}, bf16);
  const auto odd = torch::randn({4, 60}, bf16);
  const auto w_odd = torch::randn({32, 60}, bf16);
  for (const auto& [x, weight, what] :
       std::vector<std::tuple<torch::Tensor, torch::Tensor, std::string>>{{wants_grad, w, "grad"},
                                                                           {float32, w.to(torch::kFloat), "float32"},
                                                                           {many, w, "65 rows"},
                                                                           {odd, w_odd, "in 60"}}) {
    ImplementationLog log;
    const auto y = skinny_linear(x, weight);
    EXPECT_EQ(log.summary(), "skinny_linear=reference") << what;
    EXPECT_LT((y.to(torch::kDouble) - at::linear(x, weight).to(torch::kDouble)).abs().max().item<double>(), 1e-12)
        << what;
  }
}

}  // namespace MIXLAB_UNITY_ID
