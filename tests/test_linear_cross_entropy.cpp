// linear_cross_entropy (harness/linear_cross_entropy.h) against its reference, LibTorch's
// cross_entropy of the full logits hidden · Wᵀ, and autograd through both.

#include "harness/linear_cross_entropy.h"

#include "core/compat.h"

#include <gtest/gtest.h>

using namespace mixlab;

namespace MIXLAB_UNITY_ID {

struct Case {
  torch::Tensor hidden, weight, targets;
};

Case random_case(int64_t rows, int64_t d, int64_t vocab, torch::TensorOptions options) {
  torch::manual_seed(rows * 100 + vocab);
  return {torch::randn({rows, d}, options).requires_grad_(), (0.5 * torch::randn({vocab, d}, options)).requires_grad_(),
          torch::randint(0, vocab, {rows}, torch::TensorOptions().dtype(torch::kInt64).device(options.device()))};
}

// loss, ∂loss/∂hidden, ∂loss/∂weight for loss · upstream (upstream ≠ 1 checks the chain rule).
std::vector<torch::Tensor> loss_and_grads(const Case& c, bool chunked, int64_t chunk_rows, double upstream) {
  auto hidden = c.hidden.detach().clone().requires_grad_();
  auto weight = c.weight.detach().clone().requires_grad_();
  torch::Tensor loss;
  if (chunked) {
    loss = linear_cross_entropy(hidden, weight, c.targets, chunk_rows);
  } else {
    auto logits = torch::matmul(hidden, weight.t());  // [M, V]
    if (logits.scalar_type() != torch::kFloat64) logits = logits.to(torch::kFloat32);
    loss = torch::nn::functional::cross_entropy(logits, c.targets);
  }
  (loss * upstream).backward();
  return {loss.detach(), hidden.grad(), weight.grad()};
}


TEST(LinearCrossEntropy, EqualsCrossEntropyOfTheFullLogitsAndItsGradients) {
  const Case c = random_case(11, 6, 17, torch::kFloat64);
  const auto reference = loss_and_grads(c, false, 0, 3.0);
  for (int64_t chunk_rows : {int64_t{0}, int64_t{1}, int64_t{4}, int64_t{11}, int64_t{64}}) {
    const auto ours = loss_and_grads(c, true, chunk_rows, 3.0);
    EXPECT_NEAR(ours[0].item<double>(), reference[0].item<double>(), 1e-12) << "chunk " << chunk_rows;
    EXPECT_TRUE(torch::allclose(ours[1], reference[1], 1e-10, 1e-12)) << "∂hidden, chunk " << chunk_rows;
    EXPECT_TRUE(torch::allclose(ours[2], reference[2], 1e-10, 1e-12)) << "∂weight, chunk " << chunk_rows;
  }
}

TEST(LinearCrossEntropy, Float32InputsGiveAFloat32LossCloseToTheReference) {
  const Case c = random_case(40, 16, 300, torch::kFloat32);
  const auto reference = loss_and_grads(c, false, 0, 1.0);
  const auto ours = loss_and_grads(c, true, 7, 1.0);
  EXPECT_EQ(ours[0].scalar_type(), torch::kFloat32);
  EXPECT_NEAR(ours[0].item<double>(), reference[0].item<double>(), 1e-5);
  EXPECT_TRUE(torch::allclose(ours[1], reference[1], 1e-4, 1e-6));
  EXPECT_TRUE(torch::allclose(ours[2], reference[2], 1e-4, 1e-6));
}

TEST(LinearCrossEntropy, RejectsMismatchedShapes) {
  const auto h = torch::zeros({3, 4}), w = torch::zeros({5, 6}), y = torch::zeros({3}, torch::kInt64);
  EXPECT_THROW(linear_cross_entropy(h, w, y), c10::Error);
  EXPECT_THROW(linear_cross_entropy(h, torch::zeros({5, 4}), torch::zeros({2}, torch::kInt64)), c10::Error);
}

// On CUDA under bf16 autocast: the products in bf16 as the reference's, the reductions in float32.
TEST(LinearCrossEntropy, Bfloat16AutocastOnCudaIsCloseToTheReference) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  const Case c = random_case(300, 64, 5000, torch::TensorOptions().device(torch::kCUDA));
  const auto exact = loss_and_grads(c, false, 0, 1.0);  // float32 throughout
  std::vector<torch::Tensor> ours;
  {
    compat::CudaAutocast autocast(true);  // bf16
    ours = loss_and_grads(c, true, 64, 1.0);
  }
  EXPECT_NEAR(ours[0].item<double>(), exact[0].item<double>(), 2e-2 * exact[0].item<double>());
  EXPECT_LT((ours[1] - exact[1]).abs().max().item<double>(), 2e-2 * exact[1].abs().max().item<double>() + 1e-6);
  EXPECT_LT((ours[2] - exact[2]).abs().max().item<double>(), 2e-2 * exact[2].abs().max().item<double>() + 1e-6);
}

}  // namespace
