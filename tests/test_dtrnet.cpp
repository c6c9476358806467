// dtrnet against a float64 reference written from the routing rule (docs/schemes.md, "DTRNet"):
// routed tokens attend causally among routed tokens (RoPE at original positions), bypassed tokens
// get W_O W_V u_t, and each output is scaled by the probability of the path taken.

#include "attention/rope.h"
#include "core/compat.h"
#include "tests/zoo_helpers.h"

#include <cmath>

namespace mixlab {
namespace MIXLAB_UNITY_ID {
using namespace zoo_test;

torch::Tensor router_probabilities(const TokenMixerPtr& m, const torch::Tensor& h) {
  auto hidden = torch::matmul(h, weight(m, "router_in.weight").t()) + weight(m, "router_in.bias");
  hidden = hidden * torch::sigmoid(hidden);
  return torch::softmax(torch::matmul(hidden, weight(m, "router_out.weight").t()) + weight(m, "router_out.bias"), -1);
}

// Masked-loop reference: for routed t, softmax over {s ≤ t : s routed}; for bypassed t, o_t = v_t.
torch::Tensor reference(const TokenMixerPtr& m, const torch::Tensor& u, const torch::Tensor& h,
                        int64_t heads, double threshold) {
  const int64_t batch = u.size(0), n = u.size(1), d = u.size(2), dh = d / heads;
  auto p = router_probabilities(m, h);
  auto positions = torch::arange(n, torch::kLong);
  auto [cos, sin] = rope_tables(positions, dh, 1e4, u.options());
  auto heads_of = [&](const std::string& name, bool rotate) {
    auto t = torch::matmul(u, weight(m, name).t()).view({batch, n, heads, dh}).transpose(1, 2);
    return rotate ? apply_rope(t, cos, sin) : t;
  };
  auto q = heads_of("q_proj.weight", true), k = heads_of("k_proj.weight", true), v = heads_of("v_proj.weight", false);
  // o_t per (sequence, head, position), differentiable in u (through q, k, v) for the gradient test.
  std::vector<torch::Tensor> sequences;
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<torch::Tensor> head_rows;
    for (int64_t hh = 0; hh < heads; ++hh) {
      std::vector<torch::Tensor> rows;
      for (int64_t t = 0; t < n; ++t) {
        if (p[b][t][0].item<double>() <= threshold) {
          rows.push_back(v[b][hh][t]);
          continue;
        }
        std::vector<int64_t> keys;
        for (int64_t s = 0; s <= t; ++s)
          if (p[b][s][0].item<double>() > threshold) keys.push_back(s);
        auto index = torch::tensor(keys, torch::kLong);
        auto logits = torch::mv(k[b][hh].index_select(0, index), q[b][hh][t]) / std::sqrt(double(dh));
        rows.push_back(torch::mv(v[b][hh].index_select(0, index).t(), torch::softmax(logits, 0)));
      }
      head_rows.push_back(torch::stack(rows, 0));
    }
    sequences.push_back(torch::stack(head_rows, 0));
  }
  auto o = torch::stack(sequences, 0);  // [B, H, N, d_h]
  auto mixed = torch::matmul(o.transpose(1, 2).reshape({batch, n, d}), weight(m, "o_proj.weight").t());
  auto routed = p.select(-1, 0) > threshold;
  return torch::where(routed, p.select(-1, 0), p.select(-1, 1)).unsqueeze(-1) * mixed;
}

TEST(DtrNet, MixedRoutingMatchesReferenceAndStep) {
  auto m = make_f64("dtrnet", tiny_context(16, 2));
  auto u = random_input(2, 14, 16, 11);
  auto h = random_input(2, 14, 16, 12) * 3;  // the raw residual the router reads
  auto p = router_probabilities(m, h);
  const double routed = (p.select(-1, 0) > 0.5).sum().item<double>();
  ASSERT_GT(routed, 2);
  ASSERT_LT(routed, 26);  // a real mix of both paths
  auto y = m->forward_with_residual(u, h);
  EXPECT_LT(max_abs_diff(y, reference(m, u, h, 2, 0.5)), 1e-12);
  EXPECT_NEAR(m->statistics().at("routed_fraction"), routed / 28, 1e-15);
  EXPECT_NEAR(m->auxiliary_loss().item<double>(), 8e-4 * p.select(-1, 0).mean().item<double>(), 1e-15);
  EXPECT_LT(max_abs_diff(m->forward(u), reference(m, u, u, 2, 0.5)), 1e-12);  // bare forward routes on u

  // Decoding: same outputs, and the KV cache holds only the routed tokens.
  auto state = m->initial_state(2, u.options());
  std::vector<torch::Tensor> outputs;
  for (int64_t t = 0; t < 14; ++t) outputs.push_back(m->step_with_residual(u.select(1, t), h.select(1, t), state));
  EXPECT_LT(max_abs_diff(torch::stack(outputs, 1), y), 1e-12);
  EXPECT_EQ(state.bytes(), static_cast<int64_t>(routed) * 2 * 16 * 8);
}

// The packed forward's backward (gather, scatter, where) against autograd through the loop reference.
TEST(DtrNet, InputGradientsMatchTheReference) {
  auto m = make_f64("dtrnet", tiny_context(16, 2));
  auto u = random_input(3, 11, 16, 21).requires_grad_(true);
  auto h = (random_input(3, 11, 16, 22) * 3).requires_grad_(true);
  auto w = random_input(3, 11, 16, 23);
  auto k = (router_probabilities(m, h.detach()).select(-1, 0) > 0.5).sum(1);
  ASSERT_GT(k.max().item<int64_t>(), k.min().item<int64_t>());  // rows pad to the largest count
  auto [du, dh] = [&](const torch::Tensor& y) {
    auto g = torch::autograd::grad({(y * w).sum()}, {u, h});
    return std::make_pair(g[0], g[1]);
  }(m->forward_with_residual(u, h));
  auto [ref_du, ref_dh] = [&](const torch::Tensor& y) {
    auto g = torch::autograd::grad({(y * w).sum()}, {u, h});
    return std::make_pair(g[0], g[1]);
  }(reference(m, u, h, 2, 0.5));
  EXPECT_LT(max_abs_diff(du, ref_du), 1e-12);
  EXPECT_LT(max_abs_diff(dh, ref_dh), 1e-12);
}

TEST(DtrNet, AllRoutedEqualsAttentionScaledByRouter) {
  auto m = make_f64("dtrnet", tiny_context(16, 2), {{"threshold", 0.0}});
  auto attention = make_f64("attention", tiny_context(16, 2));
  {
    torch::NoGradGuard no_grad;
    for (const char* name : {"q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight"})
      weight(attention, name).copy_(weight(m, name));  // detach() shares storage
  }
  auto u = random_input(2, 13, 16, 4);
  auto p = router_probabilities(m, u);
  EXPECT_LT(max_abs_diff(m->forward(u), p.select(-1, 0).unsqueeze(-1) * attention->forward(u)), 1e-12);
  EXPECT_DOUBLE_EQ(m->statistics().at("routed_fraction"), 1.0);
}

TEST(DtrNet, NoneRoutedIsValueOutputBypass) {
  auto m = make_f64("dtrnet", tiny_context(16, 2), {{"threshold", 1.0}});
  auto u = random_input(2, 9, 16, 5);
  auto p = router_probabilities(m, u);
  auto bypass = torch::matmul(torch::matmul(u, weight(m, "v_proj.weight").t()), weight(m, "o_proj.weight").t());
  EXPECT_LT(max_abs_diff(m->forward(u), p.select(-1, 1).unsqueeze(-1) * bypass), 1e-12);
  auto state = m->initial_state(2, u.options());
  for (int64_t t = 0; t < 9; ++t) m->step(u.select(1, t), state);
  EXPECT_EQ(state.bytes(), 0);  // nothing routed, nothing cached
}

TEST(DtrNet, MatmulFlopsCountTheIssuedProducts) {
  // Two sequences that route different numbers of tokens: the products run over the larger count.
  auto m = make_f64("dtrnet", tiny_context(16, 2));
  auto u = random_input(2, 20, 16, 6) * 3;
  auto routed = (router_probabilities(m, u).select(-1, 0) > 0.5).sum(1);  // [2]
  const double k0 = routed[0].item<double>(), k1 = routed[1].item<double>();
  ASSERT_NE(k0, k1);
  m->forward(u);
  const double k_max = std::max(k0, k1), n = 20, d = 16, r = 8;
  double per_sequence = 2 * n * d * r + 2 * n * r * 2   // router layers
                        + 2 * 2 * k_max * d * d         // q, k of the packed tokens
                        + 2 * 2 * n * d * d;            // v, o of all tokens
  if (!compat::sdpa_available()) per_sequence += 4 * k_max * k_max * d;  // dense K×K scores and their product with V
  auto cost = m->cost({2, 20, 8});
  EXPECT_DOUBLE_EQ(cost.matmul_flops, 2 * per_sequence);
  EXPECT_DOUBLE_EQ(cost.state_bytes, 2 * 2 * (k0 + k1) / 2 * d * 8);
  EXPECT_NEAR(m->statistics().at("routed_fraction"), (k0 + k1) / 40, 1e-15);
}

}  // namespace
}  // namespace mixlab
