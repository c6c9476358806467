// Kernels launched as programmatic dependents (core/cuda/dependent_launch.cuh) start before the
// kernel whose output they read has finished; each must wait for it before that read.  A chain of
// a decode step's kernels, each reading the previous one's output (add_rms_norm, then
// skinny_linear, twelve times), is checked against the same chain computed in float64 on the CPU
// with the kernels' bf16 roundings: a kernel reading its input early would read the previous
// layer's values or memory not yet written, and miss by the size of the values, not by roundings.
// The chain runs eagerly and as a replayed CUDA graph (where the dependent edges are captured),
// with MIXLAB_PDL unset (the default, dependent launches on).  The tests skip without a GPU.

#include "core/skinny_linear.h"
#include "harness/add_rms_norm.h"
#include "harness/cuda_graph.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace MIXLAB_UNITY_ID {

constexpr int kLayers = 12;
constexpr int64_t kRows = 16, kWidth = 1024;
constexpr double kEps = 1e-5;

struct Chain {
  std::vector<torch::Tensor> norm_weights, weights;  // [d], [d, d] bf16 on the GPU
};

Chain make_chain() {
  torch::manual_seed(11);
  const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  Chain chain;
  for (int i = 0; i < kLayers; ++i) {
    chain.norm_weights.push_back(1 + 0.1 * torch::randn({kWidth}, bf16));
    chain.weights.push_back(torch::randn({kWidth, kWidth}, bf16) / std::sqrt(static_cast<double>(kWidth)));
  }
  return chain;
}

// h ← h + r, y = RMSNorm(h)·w, r ← y Wᵀ per layer, with the kernels: returns h after the chain.
torch::Tensor run_chain(const Chain& chain, const torch::Tensor& x) {
  torch::Tensor h = x, r = torch::zeros_like(x);
  for (int i = 0; i < kLayers; ++i) {
    auto [sum, y] = mixlab::add_rms_norm(h, r, chain.norm_weights[i], kEps);
    h = sum;
    r = mixlab::skinny_linear(y, chain.weights[i]);
  }
  return h + r;
}

// The same in float64 on the CPU, rounded to bf16 where the kernels store.
torch::Tensor reference_chain(const Chain& chain, const torch::Tensor& x) {
  auto bf16_round = [](const torch::Tensor& t) { return t.to(torch::kBFloat16).to(torch::kDouble); };
  torch::Tensor h = x.to(torch::kCPU, torch::kDouble), r = torch::zeros_like(h);
  for (int i = 0; i < kLayers; ++i) {
    h = bf16_round(h + r);
    const auto w = chain.norm_weights[i].to(torch::kCPU, torch::kDouble);
    const auto y = bf16_round(h * torch::rsqrt(h.pow(2).mean(-1, true) + kEps) * w);
    r = bf16_round(torch::matmul(y, chain.weights[i].to(torch::kCPU, torch::kDouble).t()));
  }
  return bf16_round(h + r);
}

// ‖got − want‖ / ‖want‖: roundings of float32 sums against float64 ones keep this near 1e-3.
double relative_error(const torch::Tensor& got, const torch::Tensor& want) {
  const auto g = got.to(torch::kCPU, torch::kDouble);
  return ((g - want).norm() / want.norm()).item<double>();
}

TEST(DependentLaunch, AChainOfDependentKernelsEqualsTheFloat64Chain) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  torch::NoGradGuard no_grad;
  const auto chain = make_chain();
  for (int trial = 0; trial < 3; ++trial) {
    const auto x = torch::randn({kRows, kWidth}, torch::dtype(torch::kBFloat16).device(torch::kCUDA));
    EXPECT_LT(relative_error(run_chain(chain, x), reference_chain(chain, x)), 2e-2) << "trial " << trial;
  }
}

TEST(DependentLaunch, TheChainReplayedAsACudaGraphEqualsTheFloat64Chain) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  torch::NoGradGuard no_grad;
  const auto chain = make_chain();
  auto input = torch::randn({kRows, kWidth}, torch::dtype(torch::kBFloat16).device(torch::kCUDA));
  torch::Tensor output;
  mixlab::CapturedCall graph([&] { output = run_chain(chain, input); }, 2);
  ASSERT_TRUE(graph.captured()) << graph.why_not();
  for (int replay = 0; replay < 3; ++replay) {
    const auto x = torch::randn_like(input);
    input.copy_(x);
    graph.replay();
    EXPECT_LT(relative_error(output, reference_chain(chain, x)), 2e-2) << "replay " << replay;
  }
}

}  // namespace MIXLAB_UNITY_ID
