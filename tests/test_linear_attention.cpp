// linear_attention against a float64 loop written from the recurrence (arXiv 2006.16236, §3.3):
//   S_t = S_{t-1} + φ(k_t) v_tᵀ,  z_t = z_{t-1} + φ(k_t),  o_t = φ(q_t)ᵀS_t / (φ(q_t)ᵀz_t + ε_t)

#include "tests/zoo_helpers.h"

namespace mixlab {
namespace MIXLAB_UNITY_ID {
using namespace zoo_test;

torch::Tensor phi(const torch::Tensor& x) { return torch::elu(x) + 1.0; }

// LinFusion's residual MLP written out: Linear → LayerNorm(eps 1e-5) → LeakyReLU(0.01) → Linear.
torch::Tensor reference_mlp(const TokenMixerPtr& m, const std::string& name, const torch::Tensor& x) {
  auto a = torch::matmul(x, weight(m, name + ".0.weight").t()) + weight(m, name + ".0.bias");
  auto mean = a.mean(-1, true), var = (a - mean).square().mean(-1, true);
  a = (a - mean) / torch::sqrt(var + 1e-5) * weight(m, name + ".1.weight") + weight(m, name + ".1.bias");
  a = torch::where(a > 0, a, 0.01 * a);
  return torch::matmul(a, weight(m, name + ".3.weight").t()) + weight(m, name + ".3.bias");
}

torch::Tensor reference(const TokenMixerPtr& m, const torch::Tensor& x, int64_t heads, double eps,
                        bool linfusion) {
  const int64_t batch = x.size(0), n = x.size(1), d = x.size(2), dh = d / heads;
  auto q_in = linfusion ? x + reference_mlp(m, "q_mlp", x) : x;
  auto k_in = linfusion ? x + reference_mlp(m, "k_mlp", x) : x;
  auto q = torch::matmul(q_in, weight(m, "q_proj.weight").t());
  auto k = torch::matmul(k_in, weight(m, "k_proj.weight").t());
  auto v = torch::matmul(x, weight(m, "v_proj.weight").t());
  auto o = torch::zeros({batch, n, d}, x.options());
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h) {
      auto S = torch::zeros({dh, dh}, x.options());
      auto z = torch::zeros({dh}, x.options());
      for (int64_t t = 0; t < n; ++t) {
        auto qt = phi(q[b][t].narrow(0, h * dh, dh)), kt = phi(k[b][t].narrow(0, h * dh, dh));
        auto vt = v[b][t].narrow(0, h * dh, dh);
        S = S + torch::outer(kt, vt);
        z = z + kt;
        const double eps_t = linfusion ? eps * (t + 1) : eps;
        o[b][t].narrow(0, h * dh, dh).copy_(torch::matmul(qt, S) / (torch::dot(qt, z) + eps_t));
      }
    }
  return torch::matmul(o, weight(m, "o_proj.weight").t());
}

TEST(LinearAttention, ChunkedMatchesRecurrenceReference) {
  auto context = tiny_context(16, 2);
  auto x = random_input(2, 11, 16);
  for (int64_t chunk : {1, 4, 64}) {
    auto m = make_f64("linear_attention", context, {{"chunk_size", chunk}});
    auto expected = reference(m, x, 2, 1e-6, false);
    EXPECT_LT(max_abs_diff(m->forward(x), expected), 1e-10) << "chunk " << chunk;
  }
}

TEST(LinearAttention, ChunkedEqualsRecurrentStep) {
  auto m = make_f64("linear_attention", tiny_context(16, 4), {{"chunk_size", int64_t{3}}});
  auto x = random_input(2, 10, 16, 3);
  EXPECT_LT(max_abs_diff(m->forward(x), run_steps(m, x)), 1e-10);
  auto state = m->initial_state(2, x.options());
  EXPECT_EQ(state.bytes(), 2 * 4 * 4 * 5 * 8);  // B·H·d_h·(d_h+1) float64
}

TEST(LinearAttention, LinFusionCausalVariant) {
  auto m = make_f64("linear_attention", tiny_context(16, 2),
                    {{"qk_mlp", std::string("linfusion")}, {"mlp_width", int64_t{8}},
                     {"eps", 1e-2}, {"chunk_size", int64_t{4}}});
  auto x = random_input(1, 9, 16, 5);
  EXPECT_LT(max_abs_diff(m->forward(x), reference(m, x, 2, 1e-2, true)), 1e-10);
  EXPECT_LT(max_abs_diff(m->forward(x), run_steps(m, x)), 1e-10);
}

// The products the chunked forward issues, listed shape by shape: (rows, inner, cols) per
// batch·head, 2 FLOPs per multiply-add.
TEST(LinearAttention, MatmulFlopsCountTheIssuedProducts) {
  const int64_t batch = 2, n = 10, d = 16, heads = 2, dh = 8, chunk = 4, dm = 8;
  for (bool linfusion : {false, true}) {
    auto m = make_f64("linear_attention", tiny_context(d, heads),
                      {{"chunk_size", chunk}, {"mlp_width", dm},
                       {"qk_mlp", std::string(linfusion ? "linfusion" : "none")}});
    double counted = 4 * 2.0 * batch * n * d * d;                      // q, k, v, o
    if (linfusion) counted += 2 * 2 * 2.0 * batch * n * d * dm;         // two MLPs, two layers each
    for (int64_t start = 0; start < n; start += chunk) {
      const double len = std::min(chunk, n - start);
      const double per_head = 2.0 * len * dh * len          // φQ φKᵀ
                              + 2.0 * len * len * (dh + 1)  // scores · V'
                              + 2.0 * len * dh * (dh + 1)   // φQ · S'
                              + 2.0 * dh * len * (dh + 1);  // φKᵀ · V'
      counted += batch * heads * per_head;
    }
    auto cost = m->cost({batch, n, 8});
    EXPECT_DOUBLE_EQ(cost.matmul_flops, counted);
    EXPECT_LT(cost.flops, cost.matmul_flops + 5.0 * batch * n * 3 * d + 1);
    EXPECT_DOUBLE_EQ(cost.state_bytes, batch * heads * dh * (dh + 1) * 8.0);
  }
}

}  // namespace
}  // namespace mixlab
