// selective_channel_mixer against a float64 scalar loop over each token's channel groups, written
// from MambaMixer §3.2's S6 recurrence: h_g = exp(Δ_g A) h_{g−1} + Δ_g x_g B̃_g, y_g = <h_g, C̃_g> + D x_g,
// once left to right and once right to left, summed, gated by SiLU(z), projected back.

#include "tests/zoo_helpers.h"

#include <cmath>

namespace mixlab {
namespace MIXLAB_UNITY_ID {
using namespace zoo_test;

double softplus(double v) { return std::log1p(std::exp(v)); }
double silu(double v) { return v / (1 + std::exp(-v)); }

torch::Tensor reference(const TokenMixerPtr& m, const torch::Tensor& u, int64_t group, int64_t E, int64_t n, int64_t R) {
  const int64_t batch = u.size(0), len = u.size(1), d = u.size(2), G = d / group;
  auto W_in = weight(m, "in_proj.weight"), W_out = weight(m, "out_proj.weight");
  auto out = torch::zeros_like(u);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < len; ++t) {
      auto X = u[b][t].view({G, group});
      auto xz = torch::matmul(X, W_in.t());                        // [G, 2E]
      auto x = torch::silu(xz.narrow(1, 0, E)), z = xz.narrow(1, E, E);
      auto y = torch::zeros({G, E}, torch::kFloat64);
      for (const std::string dir : {"_fwd", "_bwd"}) {
        auto W_x = weight(m, "x_proj" + dir + ".weight"), W_dt = weight(m, "dt_proj" + dir + ".weight"),
             b_dt = weight(m, "dt_proj" + dir + ".bias"), A_log = weight(m, "A_log" + dir), D = weight(m, "D" + dir);
        std::vector<double> h(E * n, 0.0);
        for (int64_t k = 0; k < G; ++k) {
          const int64_t g = dir == "_fwd" ? k : G - 1 - k;
          auto proj = torch::mv(W_x, x[g]);                        // [R + 2n]
          auto dt = torch::mv(W_dt, proj.narrow(0, 0, R)) + b_dt;  // [E]
          for (int64_t e = 0; e < E; ++e) {
            const double step = softplus(dt[e].item<double>()), xv = x[g][e].item<double>();
            double acc = D[e].item<double>() * xv;
            for (int64_t j = 0; j < n; ++j) {
              const double A = -std::exp(A_log[e][j].item<double>());
              h[e * n + j] = std::exp(step * A) * h[e * n + j] + step * xv * proj[R + j].item<double>();
              acc += h[e * n + j] * proj[R + n + j].item<double>();
            }
            y[g][e] += acc * silu(z[g][e].item<double>());
          }
        }
      }
      out[b][t] = torch::matmul(y, W_out.t()).reshape({d});
    }
  return out;
}

TEST(SelectiveChannelMixer, MatchesScalarChannelScanReference) {
  auto u = random_input(2, 5, 16, 4);
  for (auto [group, expand, n] : std::vector<std::tuple<int64_t, double, int64_t>>{{4, 2.0, 3}, {8, 1.0, 2}, {16, 0.5, 4}}) {
    auto m = make_f64("selective_channel_mixer", tiny_context(16, 2),
                      {{"group_size", group}, {"expand", expand}, {"d_state", n}});
    auto expected = reference(m, u, group, static_cast<int64_t>(expand * group), n, 1);
    EXPECT_LT(max_abs_diff(m->forward(u), expected), 1e-12) << "group " << group;
  }
}

TEST(SelectiveChannelMixer, BothScanDirectionsMatter) {
  // Changing the first channel group changes the last group's output (→ scan) and vice versa (← scan).
  auto m = make_f64("selective_channel_mixer", tiny_context(16, 2), {{"group_size", 4}});
  auto u = random_input(1, 1, 16, 9), v = u.clone();
  v[0][0].narrow(0, 0, 4) += 1.0;
  auto a = m->forward(u), b = m->forward(v);
  EXPECT_GT(max_abs_diff(a[0][0].narrow(0, 12, 4), b[0][0].narrow(0, 12, 4)), 1e-6);
  auto w = u.clone();
  w[0][0].narrow(0, 12, 4) += 1.0;
  EXPECT_GT(max_abs_diff(a[0][0].narrow(0, 0, 4), m->forward(w)[0][0].narrow(0, 0, 4)), 1e-6);
}

TEST(SelectiveChannelMixer, GroupSizeMustDivideTheWidth) {
  EXPECT_THROW(Registry::global().create("selective_channel_mixer", tiny_context(16, 2), {{"group_size", 5}}), RegistryError);
}

}  // namespace
}  // namespace mixlab
