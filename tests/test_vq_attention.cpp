// vq_attention against a float64 per-position loop written from Transformer-VQ's equations (§3):
// quantise every key to its nearest codeword by an explicit search, then plain causal softmax of
// q_t·Ĉ_j over j ≤ t — the quadratic form the block cache must reproduce exactly.

#include "tests/zoo_helpers.h"

#include <cmath>
#include <limits>

namespace mixlab {
namespace MIXLAB_UNITY_ID {
using namespace zoo_test;

// u: [B, N, d] -> [B, N, d]
torch::Tensor reference(const TokenMixerPtr& m, const torch::Tensor& u, int64_t heads, bool gated) {
  const int64_t batch = u.size(0), n = u.size(1), d = u.size(2), dh = d / heads;
  auto heads_of = [&](const std::string& name) {
    return torch::matmul(u, weight(m, name).t()).view({batch, n, heads, dh}).transpose(1, 2);  // [B, H, N, d_h]
  };
  auto ln0 = [&](torch::Tensor t) {
    t = t - t.mean(-1, true);
    return t / torch::sqrt(t.square().mean(-1, true) + 1e-6) / std::pow(double(dh), 0.25);
  };
  auto q = ln0(heads_of("q_proj.weight")), k = ln0(heads_of("k_proj.weight"));
  auto v = torch::silu(heads_of("v_proj.weight"));
  auto C = weight(m, "codebook");  // [H, S, d_h]
  const int64_t S = C.size(1);
  auto o = torch::zeros_like(v);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h) {
      std::vector<int64_t> code(n);
      for (int64_t j = 0; j < n; ++j) {
        double best = std::numeric_limits<double>::infinity();
        for (int64_t s = 0; s < S; ++s) {
          const double distance = (k[b][h][j] - C[h][s]).square().sum().item<double>();
          if (distance < best) best = distance, code[j] = s;
        }
      }
      for (int64_t t = 0; t < n; ++t) {
        std::vector<double> logits;
        for (int64_t j = 0; j <= t; ++j) logits.push_back(torch::dot(q[b][h][t], C[h][code[j]]).item<double>());
        double top = *std::max_element(logits.begin(), logits.end()), total = 0;
        for (double& l : logits) total += (l = std::exp(l - top));
        for (int64_t j = 0; j <= t; ++j) o[b][h][t] += logits[j] / total * v[b][h][j];
      }
    }
  auto merged = o.transpose(1, 2).reshape({batch, n, d});
  if (gated) merged = merged * torch::silu(torch::matmul(u, weight(m, "g_proj.weight").t()));
  return torch::matmul(merged, weight(m, "o_proj.weight").t());
}

TEST(VqAttention, BlockCacheEqualsQuadraticSoftmaxOverQuantisedKeys) {
  auto u = random_input(2, 19, 16, 3);
  for (auto [block, codes, gated] : std::vector<std::tuple<int64_t, int64_t, bool>>{
           {4, 8, true}, {3, 5, false}, {1, 4, true}, {32, 16, true}}) {
    auto m = make_f64("vq_attention", tiny_context(16, 2), {{"block_len", block}, {"n_code", codes}, {"gated", gated}});
    m->eval();
    auto expected = reference(m, u, 2, gated);
    EXPECT_LT(max_abs_diff(m->forward(u), expected), 1e-12) << "L=" << block << " S=" << codes;
    auto state = m->initial_state(2, u.options());
    std::vector<torch::Tensor> outputs;
    for (int64_t t = 0; t < u.size(1); ++t) outputs.push_back(m->step(u.select(1, t), state));
    EXPECT_LT(max_abs_diff(torch::stack(outputs, 1), expected), 1e-12) << "step, L=" << block;
    EXPECT_DOUBLE_EQ(static_cast<double>(state.bytes()), m->cost(CostShape{2, 19, 8}).state_bytes) << "L=" << block;
  }
}

TEST(VqAttention, DecodeStateIsConstantInLength) {
  auto m = make_f64("vq_attention", tiny_context(16, 2), {{"block_len", 8}, {"n_code", 16}});
  const double at_64 = m->cost(CostShape{1, 64, 8}).state_bytes;
  EXPECT_EQ(m->cost(CostShape{1, 4096, 8}).state_bytes, at_64);
  EXPECT_LT(m->cost(CostShape{1, 4095, 8}).state_bytes, at_64 + 8 * 2 * (8 + 8 * 8));
}

// Training: commitment loss β·mean_t ‖k_t − C_{z_t}‖² and the EMA of per-code key sums and counts.
TEST(VqAttention, TrainingForwardUpdatesTheCodebookByEma) {
  const double beta = 0.25, gamma = 0.9;
  auto m = make_f64("vq_attention", tiny_context(16, 2),
                    {{"block_len", 4}, {"n_code", 6}, {"commit_coef", beta}, {"ema_decay", gamma}});
  m->train();
  auto u = random_input(2, 11, 16, 5);
  auto C = weight(m, "codebook").clone();
  auto sums = weight(m, "ema_sum").clone(), counts = weight(m, "ema_count").clone();
  auto k = torch::matmul(u, weight(m, "k_proj.weight").t()).view({2, 11, 2, 8}).transpose(1, 2);
  k = k - k.mean(-1, true);
  k = k / torch::sqrt(k.square().mean(-1, true) + 1e-6) / std::pow(8.0, 0.25);
  auto new_sums = sums * gamma, new_counts = counts * gamma;
  double commit = 0;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t t = 0; t < 11; ++t) {
        auto distances = (C[h] - k[b][h][t]).square().sum(-1);  // [S]
        const int64_t z = distances.argmin().item<int64_t>();
        commit += distances[z].item<double>();
        new_sums[h][z] += (1 - gamma) * k[b][h][t];
        new_counts[h][z] += 1 - gamma;
      }
  m->forward(u);
  EXPECT_NEAR(m->auxiliary_loss().item<double>(), beta * commit / (2 * 2 * 11), 1e-12);
  EXPECT_LT(max_abs_diff(weight(m, "codebook"), new_sums / new_counts.unsqueeze(-1)), 1e-12);
  m->eval();
  m->forward(u);
  EXPECT_FALSE(m->auxiliary_loss().defined()) << "no commitment loss outside training";
}

}  // namespace
}  // namespace mixlab
