// The token embedding of the training path (harness/token_embedding.h): the lookup W[y] and its
// weight gradient Σ_{t: y_t = v} ∂L/∂e_t.  On the CPU the reference is torch::embedding; on CUDA
// (harness/cuda/token_embedding_grad.cu; skipped without a GPU) the gradient against a float64
// sum written out token by token on the CPU, for random tokens, one token over most positions
// (MQAR's padding: long runs), widths that are and are not a multiple of 32, and the dispatch.

#include "harness/token_embedding.h"

#include "core/implementation.h"
#include "tests/gpu_test.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

TEST(TokenEmbedding, CpuRunsTorchEmbedding) {
  torch::manual_seed(2);
  const auto weight = torch::randn({50, 12}, torch::requires_grad()), tokens = torch::randint(0, 50, {3, 7}, torch::kLong);
  ImplementationLog log;
  const auto e = token_embedding(weight, tokens);
  EXPECT_EQ(log.summary(), "token_embedding=reference");
  EXPECT_TRUE(torch::equal(e, torch::embedding(weight, tokens)));
}

// tokens: [B, N]; the gradient of Σ e·g with g random, against Σ_t g_t added into row y_t in float64.
void check_gradient(const torch::Tensor& tokens_cpu, int64_t vocab, int64_t dim) {
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const auto weight = torch::randn({vocab, dim}, cuda).requires_grad_(true);
  const auto tokens = tokens_cpu.to(torch::kCUDA);
  ImplementationLog log;
  const auto e = token_embedding(weight, tokens);
  EXPECT_EQ(log.summary(), "token_embedding=kernel");
  EXPECT_TRUE(torch::equal(e, weight.detach().index_select(0, tokens.reshape({-1})).view(e.sizes())));
  const auto g = torch::randn(e.sizes(), cuda);
  e.backward(g);
  auto want = torch::zeros({vocab, dim}, torch::kDouble);
  const auto flat = tokens_cpu.reshape({-1});
  const auto g64 = g.cpu().to(torch::kDouble).reshape({-1, dim});
  want.index_add_(0, flat, g64);  // CPU index_add: one row at a time, in order
  const auto got = weight.grad().cpu().to(torch::kDouble);
  SCOPED_TRACE("tokens " + c10::str(tokens_cpu.sizes()) + ", vocab " + std::to_string(vocab) + ", dim " +
               std::to_string(dim));
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-4 * (1 + want.abs().max().item<double>()));
}

TEST(TokenEmbeddingKernel, GradientMatchesTheSumPerToken) {
  MIXLAB_REQUIRE_GPU();
  torch::manual_seed(4);
  check_gradient(torch::randint(0, 8192, {8, 512}, torch::kLong), 8192, 64);
  check_gradient(torch::randint(0, 300, {3, 1001}, torch::kLong), 300, 200);
  check_gradient(torch::randint(0, 10, {1, 5}, torch::kLong), 10, 7);
  auto padded = torch::zeros({16, 512}, torch::kLong);  // token 0 over ~80% of positions, in long runs
  padded.narrow(1, 0, 100).copy_(torch::randint(1, 8192, {16, 100}, torch::kLong));
  check_gradient(padded, 8192, 64);
}

TEST(TokenEmbeddingKernel, DispatchRunsTheReferenceForWhatTheKernelDoesNotTake) {
  MIXLAB_REQUIRE_GPU();
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const auto tokens = torch::randint(0, 20, {2, 3}, cuda.dtype(torch::kLong));
  for (const auto& weight : {torch::randn({20, 8}, cuda.dtype(torch::kBFloat16)), torch::randn({8, 20}, cuda).t()}) {
    ImplementationLog log;
    const auto e = token_embedding(weight, tokens);
    EXPECT_EQ(log.summary(), "token_embedding=reference");
    EXPECT_TRUE(torch::equal(e, torch::embedding(weight, tokens)));
  }
}

}  // namespace MIXLAB_UNITY_ID
}  // namespace mixlab
