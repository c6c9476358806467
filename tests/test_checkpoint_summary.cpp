// checkpoint_attention's `summary` option (TransNeXt's pooled segments beside SCOUT's checkpoint
// tokens): the `mean` path against a per-query loop over o_t = softmax({q_t·k_t} ∪ {q_t·k̄_m}) with
// k̄_m, v̄_m the means of completed segment m; decode against forward; state and counted products.

#include "attention/checkpoint_attention.h"
#include "harness/flop_counter.h"
#include "core/registry.h"
#include "tests/attention_reference.h"

#include <gtest/gtest.h>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

using testing::max_abs_diff;

// q, k, v: [B, H, N, d_h]; query t attends to itself and the means of segments m with mS+S-1 < t.
torch::Tensor pooled_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t s) {
  const int64_t n = q.size(2);
  auto out = torch::zeros_like(q);
  for (int64_t t = 0; t < n; ++t) {
    std::vector<torch::Tensor> keys = {k.select(2, t)}, values = {v.select(2, t)};  // [B, H, d_h] each
    for (int64_t m = 0; m * s + s - 1 < t; ++m) {
      keys.push_back(k.narrow(2, m * s, s).mean(2));
      values.push_back(v.narrow(2, m * s, s).mean(2));
    }
    auto key_stack = torch::stack(keys, 2), value_stack = torch::stack(values, 2);      // [B, H, A, d_h]
    auto logits = (q.select(2, t).unsqueeze(2) * key_stack).sum(-1) / std::sqrt(double(q.size(3)));  // [B, H, A]
    auto weights = torch::exp(logits - std::get<0>(logits.max(-1, true)));
    weights = weights / weights.sum(-1, true);
    out.select(2, t).copy_((weights.unsqueeze(-1) * value_stack).sum(2));
  }
  return out;
}

TokenMixerPtr make(const std::string& summary, int64_t s, int64_t block = 0) {
  return testing::make_float64("checkpoint_attention", testing::masked_attention_context(),
                               {{"segment_size", s}, {"query_block", block}, {"summary", summary}});
}

TEST(CheckpointSummary, MeanMatchesPerQueryLoop) {
  torch::manual_seed(21);
  const int64_t n = 29;
  auto q = torch::randn({2, 3, n, 8}, torch::kFloat64), k = torch::randn_like(q), v = torch::randn_like(q);
  for (int64_t s : {1, 2, 4, 10, 29, 40})
    for (int64_t block : {0, 1, 6}) {
      auto got = checkpoint_attention(q, k, v, s, block, SegmentSummary::Mean);
      EXPECT_LT(max_abs_diff(got, pooled_reference(q, k, v, s)), 1e-12) << "S=" << s << " b=" << block;
    }
}

// A segment of one token is its own mean: with S = 1 the two summaries agree; with S > 1 they differ.
TEST(CheckpointSummary, MeanEqualsTokenOnlyForSegmentsOfOne) {
  torch::manual_seed(22);
  auto q = torch::randn({1, 2, 17, 8}, torch::kFloat64), k = torch::randn_like(q), v = torch::randn_like(q);
  EXPECT_LT(max_abs_diff(checkpoint_attention(q, k, v, 1, 0, SegmentSummary::Mean),
                         checkpoint_attention(q, k, v, 1, 0, SegmentSummary::Token)), 1e-14);
  EXPECT_GT(max_abs_diff(checkpoint_attention(q, k, v, 4, 0, SegmentSummary::Mean),
                         checkpoint_attention(q, k, v, 4, 0, SegmentSummary::Token)), 1e-3);
}

TEST(CheckpointSummary, MixerMatchesReferenceAndDecodesLikeItsForward) {
  torch::manual_seed(23);
  const int64_t n = 23;
  auto x = torch::randn({2, n, 32}, torch::kFloat64);
  for (int64_t s : {1, 3, 10, 50}) {
    auto mixer = make("mean", s);
    auto expected = testing::multi_head_reference(*mixer, x, 4, 1e4, [&](const auto& q, const auto& k, const auto& v) {
      return pooled_reference(q, k, v, s);
    });
    auto y = mixer->forward(x);
    EXPECT_LT(max_abs_diff(y, expected), 1e-12) << "S=" << s;
    torch::NoGradGuard no_grad;
    auto state = mixer->initial_state(2, x.options());
    auto decoded = testing::decode_all(*mixer, x, state);
    EXPECT_LT(max_abs_diff(decoded, y), 1e-12) << "S=" << s;
    EXPECT_EQ(state.tensors.at("checkpoint_keys").size(2), n / s);
    EXPECT_DOUBLE_EQ(static_cast<double>(state.bytes()), mixer->cost({2, n, 8}).state_bytes) << "S=" << s;
  }
}

TEST(CheckpointSummary, MeanIssuesTheSameProductsAsToken) {
  torch::manual_seed(24);
  for (int64_t n : {16, 37})
    for (int64_t s : {3, 10}) {
      auto mean = make("mean", s, 5), token = make("token", s, 5);
      auto x = torch::randn({2, n, 32}, torch::kFloat64);
      FlopCounter counter;
      mean->forward(x);
      EXPECT_DOUBLE_EQ(counter.matmul_flops(), mean->cost({2, n, 8}).matmul_flops);
      EXPECT_DOUBLE_EQ(mean->cost({2, n, 8}).matmul_flops, token->cost({2, n, 8}).matmul_flops);
      EXPECT_GT(mean->cost({2, n, 8}).flops, token->cost({2, n, 8}).flops);  // the pooling sums
    }
}

TEST(CheckpointSummary, TokenStaysTheDefault) {
  auto params = Registry::global().resolve("checkpoint_attention", {});
  EXPECT_EQ(params.text("summary"), "token");
  EXPECT_THROW(Registry::global().resolve("checkpoint_attention", {{"summary", std::string("max")}}), RegistryError);
}

}  // namespace
}  // namespace mixlab
