// The gated MLP's decoding input, SiLU(x W_gᵀ) ⊙ (x W_uᵀ), from W_g and W_u paired in blocks of 8
// rows (mixers/swiglu.h: interleave_gate_up, swiglu_linear; mixers/cuda/swiglu_linear.cu on CUDA),
// against the two products and the gate written out in float64.  A pairing off by one row or one
// block gives errors of the size of the values.  The CUDA test skips without a GPU.

#include "core/implementation.h"
#include "mixers/swiglu.h"
#include "tests/input_norm_reference.h"

#include <gtest/gtest.h>

namespace MIXLAB_UNITY_ID {

using mixlab::ImplementationLog;

// SiLU(x W_gᵀ) ⊙ (x W_uᵀ) in float64 on the CPU.
torch::Tensor gated_reference(const torch::Tensor& x, const torch::Tensor& gate, const torch::Tensor& up) {
  auto as_double = [](const torch::Tensor& t) { return t.to(torch::kCPU, torch::kDouble); };
  const auto g = torch::matmul(as_double(x), as_double(gate).t()), u = torch::matmul(as_double(x), as_double(up).t());
  return g * torch::sigmoid(g) * u;
}

TEST(SwigluLinear, OnTheCpuThePairedProductEqualsTheTwoProductsThenTheGate) {
  torch::manual_seed(4);
  const auto x = torch::randn({5, 12}, torch::kDouble);
  const auto gate = torch::randn({24, 12}, torch::kDouble), up = torch::randn({24, 12}, torch::kDouble);
  const auto pairs = mixlab::interleave_gate_up(gate, up);
  ASSERT_EQ(pairs.sizes(), (std::vector<int64_t>{48, 12}));
  EXPECT_TRUE(torch::equal(pairs.narrow(0, 8, 8), up.narrow(0, 0, 8))) << "the second 8 rows are W_up's first 8";
  ImplementationLog log;
  const auto hidden = mixlab::swiglu_linear(x, pairs);
  EXPECT_EQ(log.summary(), "skinny_linear=reference, swiglu=reference, swiglu_linear=reference");
  EXPECT_LT((hidden - gated_reference(x, gate, up)).abs().max().item<double>(), 1e-12);
}

TEST(SwigluLinear, AHiddenWidthNotAMultipleOf8CannotBePaired) {
  const auto w = torch::randn({12, 4});
  EXPECT_THROW(mixlab::interleave_gate_up(w, w), c10::Error);
}

// bf16 rounds the gate and up products and the result (2^-9 relative each): within 2e-2 of
// 1 + |exact|.  Rows within one 16-row tile, across two, and one; hidden from one block of 8 to a
// grid wider than the GPU; and with the norm folded into the product (core/input_norm.h), x the
// float64 RMSNorm(h)·g.
TEST(SwigluLinear, TheKernelEqualsTheFloat64ProductsThenTheGate) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  torch::NoGradGuard no_grad;
  const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  struct Shape {
    int64_t rows, d, hidden;
  };
  for (const Shape s : {Shape{1, 64, 8}, Shape{16, 1024, 2816}, Shape{17, 256, 24}, Shape{5, 512, 4096}}) {
    for (bool normed : {false, true}) {
      torch::manual_seed(s.rows * 7 + s.hidden);
      const auto x = torch::randn({s.rows, s.d}, bf16) * (normed ? 5.0 : 1.0);
      const auto scale = 1.0 / std::sqrt(static_cast<double>(s.d));
      const auto gate = torch::randn({s.hidden, s.d}, bf16) * scale, up = torch::randn({s.hidden, s.d}, bf16) * scale;
      const auto norm = normed ? mixlab::testing::random_input_norm(s.d, bf16) : mixlab::InputNorm{};
      ImplementationLog log;
      const auto hidden = mixlab::swiglu_linear(x, mixlab::interleave_gate_up(gate, up), norm);
      const std::string what = std::string(normed ? "normed, " : "") + "rows " + std::to_string(s.rows) + ", d " +
                               std::to_string(s.d) + ", hidden " + std::to_string(s.hidden);
      EXPECT_EQ(log.summary(), "swiglu_linear=kernel") << what;
      ASSERT_EQ(hidden.sizes(), (std::vector<int64_t>{s.rows, s.hidden})) << what;
      const auto exact = gated_reference(normed ? mixlab::testing::normalised_float64(x, norm) : x, gate, up);
      const auto error = (hidden.to(torch::kCPU, torch::kDouble) - exact).abs() / (1 + exact.abs());
      EXPECT_LT(error.max().item<double>(), 2e-2) << what;
    }
  }
}

}  // namespace MIXLAB_UNITY_ID
