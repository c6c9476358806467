// The sm90 SCOUT checkpoint kernels (attention/cuda/sm90/checkpoint_forward.h, checkpoint_backward.h)
// against float64 masked attention written here from the rule (attention/checkpoint_attention.h)
// and its float64 autograd:
//   query t sees itself and the checkpoints j = cS + S − 1 < t,
//   o_t = Σ_j softmax_j(q_t·k_j / √d) v_j,   lse_t = log Σ_j exp(q_t·k_j / √d),
// over N not a multiple of the 128-row blocks, S not dividing N, S = 1 (every earlier token: causal),
// S > N (the token alone), and a block's checkpoints spanning several 64-row tiles; forward and
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
std::pair<torch::Tensor, torch::Tensor> checkpoint_reference(const torch::Tensor& q, const torch::Tensor& k,
                                                             const torch::Tensor& v, int64_t segment) {
  const int64_t n = q.size(2);
  auto t = torch::arange(n, torch::kLong).unsqueeze(1), j = torch::arange(n, torch::kLong).unsqueeze(0);
  auto visible = (j == t) | ((j % segment == segment - 1) & (j < t));  // [N, N]
  auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(q.size(3)));
  scores = scores.masked_fill(visible.logical_not(), -INFINITY);
  return {torch::matmul(torch::softmax(scores, -1), v), torch::logsumexp(scores, -1)};
}

// (B, H, N, S); for the backward's blocks of 128 checkpoints: C = 130 and 285 (a last block
// whose second warpgroup holds none), C = 700 with S = 1 (six blocks, more query tiles than ring
// stages, both warpgroups' bands starting mid-ring), S > N (no checkpoint).
const std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t>> kShapes{
    {1, 2, 64, 10}, {1, 2, 200, 3}, {2, 1, 300, 10}, {1, 1, 1000, 10}, {1, 1, 130, 1},
    {1, 2, 257, 64}, {1, 1, 7, 10}, {1, 1, 2000, 7}, {1, 1, 1030, 100}, {1, 1, 640, 10},
    {2, 1, 700, 1}};

TEST(Sm90CheckpointForward, MatchesFloat64MaskedAttention) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  if (!mixlab::cuda::sm90_kernels_available()) GTEST_SKIP() << "skipped: not a Hopper, or not built for sm_90a";
  for (const int64_t d : {64, 128}) {
    for (const auto& [b, h, n, segment] : kShapes) {
      torch::manual_seed(b * 1000 + n + segment + d);
      auto make = [&] { return torch::randn({b, h, n, d}).to(torch::kBFloat16); };
      auto q = make(), k = make(), v = make();
      auto [o, lse] = mixlab::cuda::sm90_checkpoint_forward(q.cuda(), k.cuda(), v.cuda(), segment);
      auto [o_want, lse_want] =
          checkpoint_reference(q.to(torch::kDouble), k.to(torch::kDouble), v.to(torch::kDouble), segment);
      auto o_got = o.cpu().to(torch::kDouble), lse_got = lse.cpu().to(torch::kDouble);
      ASSERT_TRUE(torch::isfinite(o_got).all().item<bool>()) << "N " << n << " S " << segment << " d " << d;
      const double o_error = (o_got - o_want).norm().item<double>() / o_want.norm().item<double>();
      const double lse_error = (lse_got - lse_want).abs().max().item<double>();
      EXPECT_LT(o_error, 1e-2) << "o at B " << b << " H " << h << " N " << n << " S " << segment << " d " << d;
      EXPECT_LT(lse_error, 1e-3) << "lse at B " << b << " H " << h << " N " << n << " S " << segment << " d " << d;
    }
  }
#endif
}

TEST(Sm90CheckpointBackward, MatchesFloat64Autograd) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  if (!mixlab::cuda::sm90_kernels_available()) GTEST_SKIP() << "skipped: not a Hopper, or not built for sm_90a";
  for (const int64_t d : {64, 128}) {
    for (const auto& [b, h, n, segment] : kShapes) {
      torch::manual_seed(b * 1000 + n + segment + 1 + d);
      auto make = [&] { return torch::randn({b, h, n, d}).to(torch::kBFloat16); };
      auto q = make(), k = make(), v = make(), dout = make();
      auto [o, lse] = mixlab::cuda::sm90_checkpoint_forward(q.cuda(), k.cuda(), v.cuda(), segment);
      auto [dq, dk, dv] =
          mixlab::cuda::sm90_checkpoint_backward(q.cuda(), k.cuda(), v.cuda(), o, dout.cuda(), lse, segment);
      std::vector<torch::Tensor> leaves;
      for (const auto& t : {q, k, v}) leaves.push_back(t.to(torch::kDouble).requires_grad_(true));
      auto grads = torch::autograd::grad({checkpoint_reference(leaves[0], leaves[1], leaves[2], segment).first},
                                         {leaves[0], leaves[1], leaves[2]}, {dout.to(torch::kDouble)});
      const char* names[] = {"dq", "dk", "dv"};
      const torch::Tensor got[] = {dq, dk, dv};
      for (int i = 0; i < 3; ++i) {
        // With S > N no token has a checkpoint: each sees only itself, its softmax is the constant 1
        // and dq = dk = 0 exactly; then the error is measured against the size of dv.
        const double want_norm = grads[i].norm().item<double>();
        const double error = (got[i].cpu().to(torch::kDouble) - grads[i]).norm().item<double>() /
                             (want_norm > 0 ? want_norm : grads[2].norm().item<double>());
        // bf16 P and dS in the products, bf16 outputs: a few 2^-8 relative.
        EXPECT_LT(error, 2e-2) << names[i] << " at B " << b << " H " << h << " N " << n << " S " << segment
                               << " d " << d;
      }
    }
  }
#endif
}

// Forward and backward take d 64 and 128 only: any other is an error that names the file, the head
// dim and the valid ones (checked before any launch, so on any GPU).
TEST(Sm90CheckpointBackward, RefusesOtherHeadDims) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  auto lse = torch::zeros({1, 1, 16}, bf16.dtype(torch::kFloat32));
  for (const int64_t d : {32, 96, 256}) {
    auto q = torch::zeros({1, 1, 16, d}, bf16);
    mixlab::testing::expect_head_dim_refused("sm90_checkpoint_forward", d, [&] { mixlab::cuda::sm90_checkpoint_forward(q, q, q, 4); });
    mixlab::testing::expect_head_dim_refused("sm90_checkpoint_backward", d,
                   [&] { mixlab::cuda::sm90_checkpoint_backward(q, q, q, q, q, lse, 4); });
  }
#endif
}

}  // namespace MIXLAB_UNITY_ID
