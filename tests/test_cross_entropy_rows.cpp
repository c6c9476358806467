// The softmax statistics of a cross entropy per row of logits (harness/cross_entropy_rows.h):
//   forward   lse_i = log Σ_v exp(l_iv),  picked_i = l_{i, y_i};   backward  scale·(softmax − onehot)
// On the CPU the reference against LibTorch's cross_entropy and its autograd gradient (an
// independent formulation).  On CUDA (harness/cuda/cross_entropy_rows.cu; skipped without a GPU)
// the kernels against the reference in float64 from the same logits: bf16 / fp16 / float32, vocab
// sizes that take the vector loads and ones that do not (odd V), many rows, a target outside the
// vocabulary (NaN, not a read past the row), and the dispatch.

#include "harness/cross_entropy_rows.h"

#include "core/implementation.h"
#include "tests/gpu_test.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#ifdef MIXLAB_WITH_CUDA
#include "harness/cuda/kernels.h"
#endif

namespace mixlab {
namespace MIXLAB_UNITY_ID {

// The reference's statistics and gradient against cross_entropy's mean loss and autograd:
// mean(lse − picked) is the loss; the gradient with scale = g/M is ∂(g·loss)/∂logits.
TEST(CrossEntropyRows, ReferenceEqualsCrossEntropyAndItsGradient) {
  torch::manual_seed(3);
  const auto logits = (3 * torch::randn({37, 301}, torch::kDouble)).requires_grad_(true);
  const auto targets = torch::randint(0, 301, {37}, torch::kLong);
  const auto loss = torch::nn::functional::cross_entropy(logits, targets);
  (0.7 * loss).backward();
  ImplementationLog log;
  const auto [lse, picked] = cross_entropy_rows_forward(logits.detach(), targets);
  EXPECT_EQ(log.summary(), "cross_entropy_rows=reference");
  EXPECT_NEAR((lse - picked).mean().item<double>(), loss.item<double>(), 1e-12);
  const auto scale = torch::full({}, 0.7 / 37, torch::kDouble);
  const auto grad = cross_entropy_rows_backward(logits.detach().clone(), targets, lse, scale);
  EXPECT_LT((grad - logits.grad()).abs().max().item<double>(), 1e-15);
}

#ifdef MIXLAB_WITH_CUDA
double relative_error(const torch::Tensor& got, const torch::Tensor& want) {
  const auto g = got.cpu().to(torch::kDouble), w = want.cpu().to(torch::kDouble);
  EXPECT_TRUE(torch::isfinite(g).all().item<bool>()) << "non-finite values (an unwritten output?)";
  return (g - w).norm().item<double>() / std::max(w.norm().item<double>(), 1e-30);
}

// Kernel (dtype) against the float64 reference of the logits as stored.
void check_rows(int64_t rows, int64_t vocab, torch::ScalarType dtype) {
  torch::manual_seed(rows + vocab);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const auto logits = (4 * torch::randn({rows, vocab}, cuda)).to(dtype);
  const auto targets = torch::randint(0, vocab, {rows}, cuda.dtype(torch::kLong));
  const auto scale = torch::full({}, 0.37, cuda);
  ASSERT_TRUE(cuda::cross_entropy_rows_supported(logits, targets));
  ImplementationLog log;
  const auto [lse, picked] = cross_entropy_rows_forward(logits, targets);
  const auto grad = cross_entropy_rows_backward(logits.clone(), targets, lse, scale);
  EXPECT_EQ(log.summary(), "cross_entropy_rows=kernel");
  EXPECT_EQ(grad.scalar_type(), dtype);
  const auto l64 = logits.cpu().to(torch::kDouble);
  const auto [lse64, picked64] = reference::cross_entropy_rows_forward(l64, targets.cpu());
  const auto grad64 = reference::cross_entropy_rows_backward(l64, targets.cpu(), lse64, scale.cpu().to(torch::kDouble));
  SCOPED_TRACE(std::string(c10::toString(dtype)) + ", rows " + std::to_string(rows) + ", vocab " + std::to_string(vocab));
  EXPECT_LT((lse.cpu().to(torch::kDouble) - lse64).abs().max().item<double>(), 1e-4) << "lse";
  EXPECT_TRUE(torch::equal(picked.cpu().to(torch::kDouble), picked64)) << "picked";  // a copy of the logit
  EXPECT_LT(relative_error(grad, grad64), dtype == torch::kFloat ? 1e-5 : 1e-2) << "gradient";
}
#endif

// V = 8192 and 32000 (vector loads of 8 bf16 / 4 float32), 50257 and 301 (odd: one element at a
// time), 7 (fewer elements than threads); rows from 1 to 3000.
TEST(CrossEntropyRowsKernel, MatchesFloat64Reference) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  for (const auto dtype : {torch::kBFloat16, torch::kHalf, torch::kFloat}) {
    check_rows(3000, 8192, dtype);
    check_rows(5, 32000, dtype);
    check_rows(3, 50257, dtype);
    check_rows(17, 301, dtype);
    check_rows(1, 7, dtype);
  }
#endif
}

TEST(CrossEntropyRowsKernel, TargetOutsideTheVocabularyGivesNaN) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const auto logits = torch::randn({3, 64}, cuda);
  const auto targets = torch::tensor({0, 64, 63}, cuda.dtype(torch::kLong));
  const auto picked = cross_entropy_rows_forward(logits, targets).second.cpu();
  EXPECT_FALSE(std::isnan(picked[0].item<float>()));
  EXPECT_TRUE(std::isnan(picked[1].item<float>()));
  EXPECT_FALSE(std::isnan(picked[2].item<float>()));
#endif
}

// What the kernels do not take runs the reference; the binding refuses it.
TEST(CrossEntropyRowsKernel, DispatchRunsTheReferenceForWhatTheKernelDoesNotTake) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const auto logits = torch::randn({4, 64}, cuda), targets = torch::zeros({4}, cuda.dtype(torch::kLong));
  EXPECT_TRUE(cuda::cross_entropy_rows_supported(logits, targets));
  EXPECT_FALSE(cuda::cross_entropy_rows_supported(logits.to(torch::kDouble), targets));
  EXPECT_FALSE(cuda::cross_entropy_rows_supported(torch::randn({64, 4}, cuda).t(), targets));  // not contiguous
  EXPECT_FALSE(cuda::cross_entropy_rows_supported(logits, targets.to(torch::kInt)));
  EXPECT_FALSE(cuda::cross_entropy_rows_supported(logits, torch::zeros({4}, torch::kLong)));  // other device
  ImplementationLog log;
  const auto [lse, picked] = cross_entropy_rows_forward(logits.to(torch::kDouble), targets);
  EXPECT_EQ(log.summary(), "cross_entropy_rows=reference");
  EXPECT_EQ(lse.scalar_type(), torch::kDouble);
  try {
    cuda::cross_entropy_rows_forward(logits.to(torch::kDouble), targets);
    ADD_FAILURE() << "float64 logits reached the kernel";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what()).find("runs the reference"), std::string::npos) << error.what();
  }
#endif
}

}  // namespace MIXLAB_UNITY_ID
}  // namespace mixlab
