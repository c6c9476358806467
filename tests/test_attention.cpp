// `attention` against a naive float64 softmax written from the equation, loop by loop.

#include "attention/rope.h"
#include "core/registry.h"

#include <gtest/gtest.h>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

// o_t = Σ_{j<=t} softmax_j(q_t·k_j/√d_h) v_j per head, y = W_o concat(o), with RoPE on q, k.
torch::Tensor naive_causal_attention(torch::nn::Module& mixer, const torch::Tensor& x, int64_t heads,
                                     double theta) {
  auto params = mixer.named_parameters();
  auto wq = params["q_proj.weight"], wk = params["k_proj.weight"], wv = params["v_proj.weight"],
       wo = params["o_proj.weight"];
  const int64_t batch = x.size(0), n = x.size(1), d = x.size(2), dh = d / heads;
  auto out = torch::zeros_like(x);
  for (int64_t b = 0; b < batch; ++b) {
    auto q = torch::matmul(x[b], wq.t()), k = torch::matmul(x[b], wk.t()), v = torch::matmul(x[b], wv.t());
    auto concat = torch::zeros({n, d}, x.options());
    for (int64_t h = 0; h < heads; ++h) {
      auto qh = q.narrow(1, h * dh, dh).clone(), kh = k.narrow(1, h * dh, dh).clone();
      auto vh = v.narrow(1, h * dh, dh);
      // RoPE, rotate-half, one position at a time.
      for (int64_t p = 0; p < n; ++p)
        for (int64_t i = 0; i < dh / 2; ++i) {
          const double angle = p * std::pow(theta, -2.0 * i / dh), c = std::cos(angle), s = std::sin(angle);
          for (auto* t : {&qh, &kh}) {
            const double a = (*t)[p][i].item<double>(), bb = (*t)[p][i + dh / 2].item<double>();
            (*t)[p][i] = a * c - bb * s;
            (*t)[p][i + dh / 2] = bb * c + a * s;
          }
        }
      for (int64_t t = 0; t < n; ++t) {
        std::vector<double> logits;
        double top = -1e300;
        for (int64_t j = 0; j <= t; ++j) {
          logits.push_back(torch::dot(qh[t], kh[j]).item<double>() / std::sqrt(double(dh)));
          top = std::max(top, logits.back());
        }
        double total = 0;
        for (auto& l : logits) total += (l = std::exp(l - top));
        for (int64_t j = 0; j <= t; ++j) concat[t].narrow(0, h * dh, dh).add_(vh[j] * (logits[j] / total));
      }
    }
    out[b] = torch::matmul(concat, wo.t());
  }
  return out;
}

TEST(Attention, EqualsNaiveFloat64Softmax) {
  torch::manual_seed(7);
  for (double theta : {10000.0, 1e6}) {
    auto mixer = Registry::global().create("attention", MixerContext{16, 2, 0, 1, 0.3}, {{"rope_theta", theta}});
    mixer->to(torch::kFloat64);
    auto x = torch::randn({2, 11, 16}, torch::kFloat64);
    torch::NoGradGuard no_grad;
    auto y = mixer->forward(x);
    auto reference = naive_causal_attention(*mixer, x, 2, theta);
    EXPECT_TRUE(torch::allclose(y, reference, 1e-10, 1e-10)) << (y - reference).abs().max().item<double>();
  }
}

TEST(Attention, RejectsHeadsThatDoNotDivideTheWidth) {
  EXPECT_THROW(Registry::global().create("attention", MixerContext{18, 4}), RegistryError);
  EXPECT_THROW(Registry::global().create("attention", MixerContext{12, 4}), RegistryError);  // d_h = 3, odd
}

}  // namespace
}  // namespace mixlab
