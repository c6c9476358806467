// learned_topk against a float64 loop: for each query, the k prefix keys with the largest scorer
// value plus the last w keys, softmax over that set of q·k/√d_h (+ σ_s with score_bias).

#include "attention/rope.h"
#include "core/compat.h"
#include "tests/zoo_helpers.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

namespace mixlab {
namespace MIXLAB_UNITY_ID {
using namespace zoo_test;

torch::Tensor reference(const TokenMixerPtr& m, const torch::Tensor& u, int64_t heads, int64_t top_k,
                        int64_t window, bool score_bias) {
  const int64_t batch = u.size(0), n = u.size(1), d = u.size(2), dh = d / heads;
  auto sigma = (torch::matmul(u, weight(m, "scorer.weight").t()) + weight(m, "scorer.bias")).squeeze(-1);
  auto [cos, sin] = rope_tables(torch::arange(n, torch::kLong), dh, 1e4, u.options());
  auto heads_of = [&](const std::string& name, bool rotate) {
    auto t = torch::matmul(u, weight(m, name).t()).view({batch, n, heads, dh}).transpose(1, 2);
    return rotate ? apply_rope(t, cos, sin) : t;
  };
  auto q = heads_of("q_proj.weight", true), k = heads_of("k_proj.weight", true), v = heads_of("v_proj.weight", false);
  auto o = torch::zeros_like(v);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < n; ++t) {
      std::vector<int64_t> prefix(t + 1);
      std::iota(prefix.begin(), prefix.end(), 0);
      std::sort(prefix.begin(), prefix.end(), [&](int64_t a, int64_t c) {
        return sigma[b][a].item<double>() > sigma[b][c].item<double>();
      });
      std::set<int64_t> chosen(prefix.begin(), prefix.begin() + std::min<int64_t>(top_k, t + 1));
      for (int64_t s = std::max<int64_t>(0, t - window + 1); s <= t; ++s) chosen.insert(s);
      for (int64_t hh = 0; hh < heads; ++hh) {
        std::vector<double> logits;
        for (int64_t s : chosen)
          logits.push_back(torch::dot(q[b][hh][t], k[b][hh][s]).item<double>() / std::sqrt(double(dh)) +
                           (score_bias ? sigma[b][s].item<double>() : 0.0));
        double top = *std::max_element(logits.begin(), logits.end()), total = 0;
        for (double& l : logits) total += (l = std::exp(l - top));
        size_t j = 0;
        for (int64_t s : chosen) o[b][hh][t] += logits[j++] / total * v[b][hh][s];
      }
    }
  return torch::matmul(o.transpose(1, 2).reshape({batch, n, d}), weight(m, "o_proj.weight").t());
}

TEST(LearnedTopk, MatchesSelectionReferenceAndStep) {
  auto u = random_input(2, 17, 16, 21);
  for (bool bias : {true, false})
    for (auto [top_k, window] : std::vector<std::pair<int64_t, int64_t>>{{3, 2}, {5, 0}, {1, 4}, {4, 40}}) {
      auto m = make_f64("learned_topk", tiny_context(16, 2),
                        {{"top_k", top_k}, {"window", window}, {"score_bias", bias}});
      auto expected = reference(m, u, 2, top_k, window, bias);
      EXPECT_LT(max_abs_diff(m->forward(u), expected), 1e-12) << top_k << "/" << window << "/" << bias;
      EXPECT_LT(max_abs_diff(run_steps(m, u), expected), 1e-12) << top_k << "/" << window << "/" << bias;
    }
}

TEST(LearnedTopk, TopkAtLeastLengthEqualsAttention) {
  auto m = make_f64("learned_topk", tiny_context(16, 2),
                    {{"top_k", int64_t{12}}, {"window", int64_t{3}}, {"score_bias", false}});
  auto attention = make_f64("attention", tiny_context(16, 2));
  {
    torch::NoGradGuard no_grad;
    for (const char* name : {"q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight"})
      weight(attention, name).copy_(weight(m, name));
  }
  for (int64_t n : {5, 12}) {
    auto u = random_input(2, n, 16, 30 + n);
    EXPECT_LT(max_abs_diff(m->forward(u), attention->forward(u)), 1e-12) << n;
  }
}

TEST(LearnedTopk, MatmulFlopsCountTheIssuedProducts) {
  auto m = make_f64("learned_topk", tiny_context(16, 2), {{"top_k", int64_t{4}}, {"window", int64_t{30}}});
  const double b = 2, n = 20, d = 16, candidates = 4 + 20;  // window capped at N
  const double counted = 4 * 2 * b * n * d * d            // q, k, v, o
                         + 2 * b * n * d                  // scorer d -> 1
                         + 2 * (2 * b * n * candidates * d);  // q·K_selᵀ and p·V_sel
  auto cost = m->cost({2, 20, 8});
  EXPECT_DOUBLE_EQ(cost.matmul_flops, counted);
  EXPECT_DOUBLE_EQ(cost.state_bytes, b * (2 * n * d + n) * 8);
  EXPECT_LE(cost.flops, counted);
}

}  // namespace
}  // namespace mixlab
