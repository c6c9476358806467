// The sm90 sliding-window kernels (attention/cuda/sm90/window_forward.h, window_backward.h) against
// float64 masked attention written here from its equation, and its float64 autograd:
//   o_t = Σ_{t−W < j ≤ t} softmax_j(q_t·k_j / √d) v_j,   lse_t = log Σ_{t−W < j ≤ t} exp(q_t·k_j / √d)
// over shapes that cover N not a multiple of the 64-row tiles, a window that does not divide
// them, W = 1 (each token alone), W ≥ N (causal), and several sequences and heads; forward and
// backward at head dims 64 and 128 (other head dims refused).
// Skipped without a GPU, on a GPU that is not a Hopper, and in a build not for sm_90a.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "tests/gpu_test.h"
#include "tests/sm90_head_dims.h"
#ifdef MIXLAB_WITH_CUDA
#include "attention/cuda/kernels.h"
#endif

namespace MIXLAB_UNITY_ID {

// q, k, v: [B, H, N, d] float64 -> o [B, H, N, d], lse [B, H, N].
std::pair<torch::Tensor, torch::Tensor> window_reference(const torch::Tensor& q, const torch::Tensor& k,
                                                         const torch::Tensor& v, int64_t window) {
  const int64_t n = q.size(2);
  auto t = torch::arange(n, torch::kLong).unsqueeze(1), j = torch::arange(n, torch::kLong).unsqueeze(0);
  auto visible = (j <= t) & (j > t - window);  // [N, N]
  auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(q.size(3)));
  scores = scores.masked_fill(visible.logical_not(), -INFINITY);
  return {torch::matmul(torch::softmax(scores, -1), v), torch::logsumexp(scores, -1)};
}

// (B, H, N, W): N not a multiple of 64, W not dividing it, W = 1, W ≥ N (causal), several heads;
// for the backward's 128-key blocks: a last block whose second warpgroup holds no key (64, 130),
// one holding a few (200, 1500: N mod 128 = 92), more query tiles per block than ring stages.
const std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t>> kShapes{
    {1, 2, 64, 64}, {1, 2, 200, 37}, {2, 1, 300, 128}, {1, 1, 1000, 256}, {1, 1, 130, 1},
    {1, 2, 257, 5000}, {1, 1, 7, 3}, {1, 1, 1024, 1024}, {2, 2, 1500, 300}};

// |got − want| / |want|, or / |scale| where want is zero: with W = 1 each token sees only itself,
// its softmax is the constant 1 and dq = dk = 0 exactly; then the error is measured against the
// size of the problem's gradients (dv's).
double relative_error(const torch::Tensor& got, const torch::Tensor& want, const torch::Tensor& scale) {
  const double want_norm = want.norm().item<double>();
  return (got.cpu().to(torch::kDouble) - want).norm().item<double>() /
         (want_norm > 0 ? want_norm : scale.norm().item<double>());
}

TEST(Sm90WindowForward, MatchesFloat64MaskedAttention) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  if (!mixlab::cuda::sm90_kernels_available()) GTEST_SKIP() << "skipped: not a Hopper, or not built for sm_90a";
  for (const int64_t d : {64, 128}) {
    for (const auto& [b, h, n, w] : kShapes) {
      torch::manual_seed(b * 1000 + n + w + d);
      auto make = [&] { return torch::randn({b, h, n, d}).to(torch::kBFloat16); };
      auto q = make(), k = make(), v = make();
      auto [o, lse] = mixlab::cuda::sm90_window_forward(q.cuda(), k.cuda(), v.cuda(), w);
      auto [o_want, lse_want] = window_reference(q.to(torch::kDouble), k.to(torch::kDouble), v.to(torch::kDouble), w);
      auto o_got = o.cpu().to(torch::kDouble), lse_got = lse.cpu().to(torch::kDouble);
      ASSERT_TRUE(torch::isfinite(o_got).all().item<bool>()) << "N " << n << " W " << w << " d " << d;
      const double o_error = (o_got - o_want).norm().item<double>() / o_want.norm().item<double>();
      const double lse_error = (lse_got - lse_want).abs().max().item<double>();
      // bf16 output and bf16 P in P·V: about 2^-8 relative per element.
      EXPECT_LT(o_error, 1e-2) << "o at B " << b << " H " << h << " N " << n << " W " << w << " d " << d;
      EXPECT_LT(lse_error, 1e-3) << "lse at B " << b << " H " << h << " N " << n << " W " << w << " d " << d;
    }
  }
#endif
}

TEST(Sm90WindowBackward, MatchesFloat64Autograd) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  if (!mixlab::cuda::sm90_kernels_available()) GTEST_SKIP() << "skipped: not a Hopper, or not built for sm_90a";
  for (const int64_t d : {64, 128}) {
    for (const auto& [b, h, n, w] : kShapes) {
      torch::manual_seed(b * 1000 + n + w + 1 + d);
      auto make = [&] { return torch::randn({b, h, n, d}).to(torch::kBFloat16); };
      auto q = make(), k = make(), v = make(), dout = make();
      auto [o, lse] = mixlab::cuda::sm90_window_forward(q.cuda(), k.cuda(), v.cuda(), w);
      auto [dq, dk, dv] = mixlab::cuda::sm90_window_backward(q.cuda(), k.cuda(), v.cuda(), o, dout.cuda(), lse, w);
      std::vector<torch::Tensor> leaves;
      for (const auto& t : {q, k, v}) leaves.push_back(t.to(torch::kDouble).requires_grad_(true));
      auto grads = torch::autograd::grad({window_reference(leaves[0], leaves[1], leaves[2], w).first},
                                         {leaves[0], leaves[1], leaves[2]}, {dout.to(torch::kDouble)});
      const std::string where = " at B " + std::to_string(b) + " H " + std::to_string(h) + " N " +
                                std::to_string(n) + " W " + std::to_string(w) + " d " + std::to_string(d);
      // bf16 P and dS in the products, bf16 outputs: a few 2^-8 relative.
      EXPECT_LT(relative_error(dq, grads[0], grads[2]), 2e-2) << "dq" << where;
      EXPECT_LT(relative_error(dk, grads[1], grads[2]), 2e-2) << "dk" << where;
      EXPECT_LT(relative_error(dv, grads[2], grads[2]), 2e-2) << "dv" << where;
    }
  }
#endif
}

// Forward and backward take d 64 and 128 only: any other is an error that names the file, the head
// dim and the valid ones (checked before any launch, so on any GPU).
TEST(Sm90WindowForward, RefusesOtherHeadDims) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  auto lse = torch::zeros({1, 1, 16}, bf16.dtype(torch::kFloat32));
  for (const int64_t d : {32, 96, 256}) {
    auto q = torch::zeros({1, 1, 16, d}, bf16);
    mixlab::testing::expect_head_dim_refused("sm90_window_forward", d, [&] { mixlab::cuda::sm90_window_forward(q, q, q, 4); });
    mixlab::testing::expect_head_dim_refused("sm90_window_backward", d, [&] { mixlab::cuda::sm90_window_backward(q, q, q, q, q, lse, 4); });
  }
#endif
}

}  // namespace MIXLAB_UNITY_ID
