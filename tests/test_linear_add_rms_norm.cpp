// A decode step's output projection with the residual add and the next norm as one op
// (harness/linear_add_rms_norm.h; harness/cuda/linear_add_rms_norm.cu on CUDA), against the three
// steps written out in float64:
//   h = r + (x Wᵀ + b),   y = h · rsqrt(mean(h²) + eps) · w
// On CUDA the kernel's last block of each 16 rows normalises them after every block has stored its
// part of h: a block counted wrongly, or reading h before another block wrote it, gives a y off by
// the size of the values for a whole row, not by roundings; the chain test runs twelve launches
// eagerly and replayed as a CUDA graph, so that a counter not back at zero after a launch shows.
// The CUDA tests skip without a GPU.

#include "core/implementation.h"
#include "core/skinny_linear.h"
#include "harness/add_rms_norm.h"
#include "harness/cuda_graph.h"
#include "harness/linear_add_rms_norm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace MIXLAB_UNITY_ID {

using mixlab::ImplementationLog;

torch::Tensor as_double(const torch::Tensor& t) { return t.to(torch::kCPU, torch::kDouble); }

struct Exact {
  torch::Tensor h, y;
};

// The three steps in float64 on the CPU, from the inputs as given (bf16 inputs taken exactly).
Exact exact(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
            const torch::Tensor& residual, const torch::Tensor& norm_weight, double eps) {
  auto branch = torch::matmul(as_double(x), as_double(weight).t());
  if (bias.defined()) branch = branch + as_double(bias);
  const auto h = as_double(residual) + branch;
  return {h, h * torch::rsqrt(h.pow(2).mean(-1, true) + eps) * as_double(norm_weight)};
}

double max_relative(const torch::Tensor& got, const torch::Tensor& want) {
  return ((as_double(got) - want).abs() / (1 + want.abs())).max().item<double>();
}

TEST(LinearAddRmsNorm, OnTheCpuItIsTheProductThenTheAddAndTheNorm) {
  torch::manual_seed(3);
  const auto x = torch::randn({5, 12}, torch::kDouble), weight = torch::randn({16, 12}, torch::kDouble);
  const auto bias = torch::randn({16}, torch::kDouble), residual = torch::randn({5, 16}, torch::kDouble);
  const auto norm_weight = 1 + 0.1 * torch::randn({16}, torch::kDouble);
  ImplementationLog log;
  const auto [h, y] = mixlab::linear_add_rms_norm(x, weight, bias, residual, norm_weight, 1e-6);
  EXPECT_EQ(log.summary(), "add_rms_norm=reference, linear_add_rms_norm=reference, skinny_linear=reference");
  const auto want = exact(x, weight, bias, residual, norm_weight, 1e-6);
  EXPECT_LT((h - want.h).abs().max().item<double>(), 1e-12);
  EXPECT_LT((y - want.y).abs().max().item<double>(), 1e-12);
}

// bf16 rounds the product, h and y (2^-9 relative each): within 2e-2 of 1 + |exact|.  Rows in one
// 16-row slice, across two and four slices; widths from one block of 8 outputs to 2048 (the
// norm's limit), with and without a bias.  The kernel's h is the two-op path's h bit for bit (the
// same product kernel and the same roundings), and its y within a rounding of that path's y.
TEST(LinearAddRmsNorm, TheKernelEqualsTheFloat64StepsAndTheTwoKernels) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  torch::NoGradGuard no_grad;
  const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  struct Shape {
    int64_t rows, in, d;
    bool bias;
  };
  for (const Shape s : {Shape{1, 64, 8, false}, Shape{16, 2048, 1024, false}, Shape{16, 2816, 1024, true},
                        Shape{17, 256, 72, true}, Shape{40, 1024, 2048, false}, Shape{64, 512, 768, true}}) {
    torch::manual_seed(s.rows * 13 + s.d);
    const std::string what = "rows " + std::to_string(s.rows) + ", in " + std::to_string(s.in) + ", d " +
                             std::to_string(s.d) + (s.bias ? ", bias" : "");
    const auto x = torch::randn({s.rows, s.in}, bf16);
    const auto weight = torch::randn({s.d, s.in}, bf16) / std::sqrt(static_cast<double>(s.in));
    const auto bias = s.bias ? torch::randn({s.d}, bf16) : torch::Tensor();
    const auto residual = torch::randn({s.rows, s.d}, bf16), norm_weight = 1 + 0.1 * torch::randn({s.d}, bf16);
    ImplementationLog log;
    const auto [h, y] = mixlab::linear_add_rms_norm(x, weight, bias, residual, norm_weight, 1e-6);
    EXPECT_EQ(log.summary(), "linear_add_rms_norm=kernel") << what;
    const auto want = exact(x, weight, bias, residual, norm_weight, 1e-6);
    EXPECT_LT(max_relative(h, want.h), 2e-2) << what;
    EXPECT_LT(max_relative(y, want.y), 2e-2) << what;
    const auto [h2, y2] = mixlab::add_rms_norm(residual, mixlab::skinny_linear(x, weight, bias), norm_weight, 1e-6);
    EXPECT_TRUE(torch::equal(h, h2)) << what;
    EXPECT_LT(max_relative(y, as_double(y2)), 1e-2) << what;
  }
}

TEST(LinearAddRmsNorm, ATooWideNormOrAGradientTakesTheReference) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  const auto x = torch::randn({4, 64}, bf16);
  {
    const auto weight = torch::randn({2056, 64}, bf16);  // d past the norm's 2048
    ImplementationLog log;
    mixlab::linear_add_rms_norm(x, weight, {}, torch::randn({4, 2056}, bf16), torch::ones({2056}, bf16), 1e-6);
    EXPECT_EQ(log.summary(), "add_rms_norm=reference, linear_add_rms_norm=reference, skinny_linear=kernel");
  }
  const auto residual = torch::randn({4, 64}, bf16).requires_grad_();
  ImplementationLog log;
  mixlab::linear_add_rms_norm(x, torch::randn({64, 64}, bf16), {}, residual, torch::ones({64}, bf16), 1e-6);
  EXPECT_EQ(log.summary(), "add_rms_norm=kernel, linear_add_rms_norm=reference, skinny_linear=kernel");
}

// Twelve layers h ← h + y Wᵢᵀ, y ← RMSNorm(h)·wᵢ, each one launch: eagerly, then captured once and
// replayed with new inputs, against the float64 chain with the kernels' bf16 roundings.
constexpr int kLayers = 12;
constexpr int64_t kRows = 16, kWidth = 1024;

struct Chain {
  std::vector<torch::Tensor> weights, norm_weights;  // [d, d], [d] bf16 on the GPU
};

torch::Tensor run_chain(const Chain& chain, const torch::Tensor& h0, const torch::Tensor& y0) {
  torch::Tensor h = h0, y = y0;
  for (int i = 0; i < kLayers; ++i)
    std::tie(h, y) = mixlab::linear_add_rms_norm(y, chain.weights[i], {}, h, chain.norm_weights[i], 1e-5);
  return y;
}

torch::Tensor reference_chain(const Chain& chain, const torch::Tensor& h0, const torch::Tensor& y0) {
  auto bf16_round = [](const torch::Tensor& t) { return t.to(torch::kBFloat16).to(torch::kDouble); };
  torch::Tensor h = as_double(h0), y = as_double(y0);
  for (int i = 0; i < kLayers; ++i) {
    h = bf16_round(h + bf16_round(torch::matmul(y, as_double(chain.weights[i]).t())));
    y = bf16_round(h * torch::rsqrt(h.pow(2).mean(-1, true) + 1e-5) * as_double(chain.norm_weights[i]));
  }
  return y;
}

double relative_error(const torch::Tensor& got, const torch::Tensor& want) {
  return ((as_double(got) - want).norm() / want.norm()).item<double>();
}

TEST(LinearAddRmsNorm, AChainOfLaunchesEagerAndReplayedEqualsTheFloat64Chain) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  torch::NoGradGuard no_grad;
  torch::manual_seed(17);
  const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  Chain chain;
  for (int i = 0; i < kLayers; ++i) {
    chain.weights.push_back(torch::randn({kWidth, kWidth}, bf16) / std::sqrt(static_cast<double>(kWidth)));
    chain.norm_weights.push_back(1 + 0.1 * torch::randn({kWidth}, bf16));
  }
  for (int trial = 0; trial < 2; ++trial) {
    const auto h0 = torch::randn({kRows, kWidth}, bf16), y0 = torch::randn({kRows, kWidth}, bf16);
    EXPECT_LT(relative_error(run_chain(chain, h0, y0), reference_chain(chain, h0, y0)), 2e-2) << "eager " << trial;
  }
  auto h_in = torch::randn({kRows, kWidth}, bf16), y_in = torch::randn({kRows, kWidth}, bf16);
  torch::Tensor output;
  mixlab::CapturedCall graph([&] { output = run_chain(chain, h_in, y_in); }, 2);
  ASSERT_TRUE(graph.captured()) << graph.why_not();
  for (int replay = 0; replay < 3; ++replay) {
    const auto h0 = torch::randn_like(h_in), y0 = torch::randn_like(y_in);
    h_in.copy_(h0);
    y_in.copy_(y0);
    graph.replay();
    EXPECT_LT(relative_error(output, reference_chain(chain, h0, y0)), 2e-2) << "replay " << replay;
  }
}

}  // namespace MIXLAB_UNITY_ID
