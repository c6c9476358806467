// `mamba2` (Mamba-2 / SSD) against float64 references written from arXiv 2405.21060, §6: the chunked
// (dual) forward equals the recurrent step() form for chunk sizes that do and do not divide N,
// equals a scalar sequential recurrence built from the module's weights, is causal, and its
// cost() matrix-product FLOPs and parameter count match what the module issues and holds.

#include "core/registry.h"
#include "harness/flop_counter.h"
#include "tests/mixer_test_helpers.h"

#include <gtest/gtest.h>

#include <cmath>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

const auto kF64 = torch::TensorOptions().dtype(torch::kDouble);

// A tiny float64 mamba2 mixer from a fixed seed (init_std larger than usual so that every path
// carries signal).
TokenMixerPtr make_mamba2(int64_t d_model, std::map<std::string, ParamValue> params, uint64_t seed = 11) {
  return testing::make_f64("mamba2", testing::tiny_context(d_model, 4, 0.2), params, seed);
}

// A small configuration with several heads and two groups: d = 8, E = 16, P = 4 -> H = 4, G = 2.
std::map<std::string, ParamValue> small(int64_t chunk) {
  return {{"d_state", int64_t{3}}, {"headdim", int64_t{4}}, {"ngroups", int64_t{2}},
          {"d_conv", int64_t{3}},  {"chunk_size", chunk}};
}

// The block one scalar at a time, from the weights:
//   Δ = softplus(dt + dt_bias);  S_t[p, j] = exp(Δ A_h) S_{t−1}[p, j] + Δ x_t[p] B̃_t[g, j];
//   y_t[p] = Σ_j S_t[p, j] C̃_t[g, j] + D_h x_t[p];  g = h / (H/G);
//   out = out_proj( RMSNorm_group(y ⊙ SiLU(z)) · w ).
// With hsm_chunk = Q > 0 (EfficientViM's hidden-state mixer): at each chunk entry t = cQ the state
// H = S splits off; inside the chunk S_t = R_t + a_t H with R the chunk's own state (R = 0 at entry)
// and a_t the decay since entry, and the readout uses R_t + a_t M(H), M(H) = W_out((W_in H) ⊙ SiLU(W_gate H))
// over the E channels for each state index j.
torch::Tensor reference_forward(std::map<std::string, torch::Tensor> w, const torch::Tensor& x, int64_t head_dim,
                                int64_t groups, double eps, int64_t hsm_chunk = 0) {
  const int64_t batch = x.size(0), N = x.size(1), E = w["norm.weight"].size(0), H = w["A_log"].size(0),
                P = head_dim, K = w["conv1d.weight"].size(2), conv_channels = w["conv1d.weight"].size(0),
                n = (conv_channels - E) / (2 * groups);
  auto projected = torch::matmul(x, w["in_proj.weight"].t());
  auto z = projected.narrow(-1, 0, E);
  auto xBC = projected.narrow(-1, E, conv_channels);
  auto dt = projected.narrow(-1, E + conv_channels, H);
  auto conv = torch::zeros_like(xBC);
  for (int64_t t = 0; t < N; ++t)
    for (int64_t k = 0; k < K; ++k)
      if (t - (K - 1) + k >= 0)
        conv.select(1, t) += w["conv1d.weight"].select(1, 0).select(1, k) * xBC.select(1, t - (K - 1) + k);
  auto activated = torch::silu(conv + w["conv1d.bias"]).contiguous();
  auto delta = torch::softplus(dt + w["dt_bias"]).contiguous();
  auto xa = activated.accessor<double, 3>();
  auto da = delta.accessor<double, 3>();
  auto A_log = w["A_log"].accessor<double, 1>();
  auto D = w["D"].accessor<double, 1>();
  auto y = torch::zeros({batch, N, E}, kF64);
  auto ya = y.accessor<double, 3>();
  // M(H) for one state: H [E][n] (channel e = h·P + p) -> [E][n], explicit sums.
  auto mix = [&](const std::vector<double>& state) {
    auto Win = w["hsm_in.weight"].accessor<double, 2>(), Wg = w["hsm_gate.weight"].accessor<double, 2>(),
         Wo = w["hsm_out.weight"].accessor<double, 2>();
    std::vector<double> out(E * n, 0.0);
    for (int64_t j = 0; j < n; ++j) {
      std::vector<double> hidden(E, 0.0);
      for (int64_t e = 0; e < E; ++e) {
        double a = 0, g = 0;
        for (int64_t f = 0; f < E; ++f) a += Win[e][f] * state[f * n + j], g += Wg[e][f] * state[f * n + j];
        hidden[e] = a * g / (1 + std::exp(-g));
      }
      for (int64_t e = 0; e < E; ++e)
        for (int64_t f = 0; f < E; ++f) out[e * n + j] += Wo[e][f] * hidden[f];
    }
    return out;
  };
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<double> S(E * n, 0.0), R(E * n, 0.0), entry(E * n, 0.0), mixed(E * n, 0.0), since(H, 1.0);
    for (int64_t t = 0; t < N; ++t) {
      if (hsm_chunk > 0 && t % hsm_chunk == 0) {
        entry = S, mixed = mix(S);
        std::fill(R.begin(), R.end(), 0.0);
        std::fill(since.begin(), since.end(), 1.0);
      }
      for (int64_t h = 0; h < H; ++h) {
        const int64_t g = h / (H / groups);
        const double step = da[b][t][h], decay = std::exp(-step * std::exp(A_log[h]));
        since[h] *= decay;
        for (int64_t p = 0; p < P; ++p) {
          const int64_t e = h * P + p;
          const double input = xa[b][t][e];
          double out = D[h] * input;
          for (int64_t j = 0; j < n; ++j) {
            S[e * n + j] = decay * S[e * n + j] + step * input * xa[b][t][E + g * n + j];
            R[e * n + j] = decay * R[e * n + j] + step * input * xa[b][t][E + g * n + j];
            const double read = hsm_chunk > 0 ? R[e * n + j] + since[h] * mixed[e * n + j] : S[e * n + j];
            out += read * xa[b][t][E + groups * n + g * n + j];
          }
          ya[b][t][e] = out;
        }
      }
    }
  }
  auto gated = (y * torch::silu(z)).reshape({batch, N, groups, E / groups});
  auto normed = (gated / torch::sqrt(gated.square().mean(-1, true) + eps)).reshape({batch, N, E});
  return torch::matmul(normed * w["norm.weight"], w["out_proj.weight"].t());
}

TEST(Mamba2, ChunkedEqualsRecurrentStep) {
  for (int64_t chunk : {1, 4, 5, 12, 16}) {  // N = 12: dividing, not dividing, one chunk, longer than N
    auto mixer = make_mamba2(8, small(chunk));
    auto x = torch::randn({2, 12, 8}, kF64);
    auto full = mixer->forward(x);
    ASSERT_TRUE(mixer->has_step());
    auto state = mixer->initial_state(2, kF64);
    for (int64_t t = 0; t < 12; ++t) {
      auto y = mixer->step(x.select(1, t), state);
      EXPECT_TRUE(torch::allclose(y, full.select(1, t), 1e-10, 1e-12))
          << "chunk " << chunk << " t " << t << ": " << (y - full.select(1, t)).abs().max().item<double>();
    }
    EXPECT_DOUBLE_EQ(mixer->cost(CostShape{2, 12, 8}).state_bytes, static_cast<double>(state.bytes()));
  }
}

TEST(Mamba2, ChunkSizeDoesNotChangeTheOutput) {
  torch::manual_seed(12);
  auto x = torch::randn({1, 13, 8}, kF64);
  auto reference = make_mamba2(8, small(1), 21)->forward(x);
  for (int64_t chunk : {3, 4, 13, 32}) {
    auto mixer = make_mamba2(8, small(chunk), 21);  // same seed: same weights
    EXPECT_TRUE(torch::allclose(mixer->forward(x), reference, 1e-10, 1e-12)) << "chunk " << chunk;
  }
}

TEST(Mamba2, EqualsScalarSequentialRecurrence) {
  for (int64_t chunk : {4, 5}) {
    auto mixer = make_mamba2(8, small(chunk));
    auto x = torch::randn({2, 11, 8}, kF64);
    auto out = mixer->forward(x);
    auto expected = reference_forward(testing::weights_by_name(mixer), x, 4, 2, 1e-5);
    EXPECT_TRUE(torch::allclose(out, expected, 1e-10, 1e-12))
        << "chunk " << chunk << ": " << (out - expected).abs().max().item<double>();
  }
}

// EfficientViM's hidden-state mixer (hidden_mixer = hsm): chunked forward = scalar reference =
// step(), for chunks that do and do not divide N; its cost adds 6·E²·n per chunk.
TEST(Mamba2, HiddenStateMixerMatchesReferenceAndStep) {
  for (int64_t chunk : {3, 4, 16}) {
    auto params = small(chunk);
    params["hidden_mixer"] = std::string("hsm");
    auto mixer = make_mamba2(8, params);
    auto x = torch::randn({2, 11, 8}, kF64);
    auto out = mixer->forward(x);
    auto expected = reference_forward(testing::weights_by_name(mixer), x, 4, 2, 1e-5, chunk);
    EXPECT_TRUE(torch::allclose(out, expected, 1e-10, 1e-12))
        << "chunk " << chunk << ": " << (out - expected).abs().max().item<double>();
    auto state = mixer->initial_state(2, kF64);
    std::vector<torch::Tensor> steps;
    for (int64_t t = 0; t < 11; ++t) steps.push_back(mixer->step(x.select(1, t), state));
    EXPECT_TRUE(torch::allclose(torch::stack(steps, 1), expected, 1e-10, 1e-12)) << "step, chunk " << chunk;
    EXPECT_DOUBLE_EQ(mixer->cost(CostShape{2, 11, 8}).state_bytes, static_cast<double>(state.bytes()));
    FlopCounter counter;
    mixer->forward(x);
    EXPECT_NEAR(counter.matmul_flops(), mixer->cost(CostShape{2, 11, 8}).matmul_flops, 1e-6);
    if (chunk < 11) {  // same chunking as the plain block: the difference is the mixer, 6·E²·n per chunk entry
      const double chunks = std::ceil(11.0 / chunk), d_state = 3, E = 16;
      EXPECT_DOUBLE_EQ(mixer->cost(CostShape{2, 11, 8}).flops - make_mamba2(8, small(chunk))->cost(CostShape{2, 11, 8}).flops,
                       2 * chunks * 6.0 * E * E * d_state);
    }
  }
}

TEST(Mamba2, Causal) {
  auto mixer = make_mamba2(8, small(4));
  auto x = torch::randn({2, 12, 8}, kF64);
  auto changed = x.clone();
  changed.select(1, 6).add_(torch::randn({2, 8}, kF64));
  auto before = mixer->forward(x), after = mixer->forward(changed);
  EXPECT_TRUE(torch::allclose(before.narrow(1, 0, 6), after.narrow(1, 0, 6), 0, 1e-13));
  EXPECT_GT((before.narrow(1, 6, 6) - after.narrow(1, 6, 6)).abs().min().item<double>(), 0.0);
}

TEST(Mamba2, FiniteGradientsToEveryParameter) {
  auto mixer = make_mamba2(8, small(5));
  auto x = torch::randn({2, 12, 8}, kF64);
  mixer->forward(x).square().sum().backward();
  for (const auto& item : mixer->named_parameters()) {
    const auto& grad = item.value().grad();
    ASSERT_TRUE(grad.defined()) << item.key();
    EXPECT_TRUE(torch::isfinite(grad).all().item<bool>()) << item.key();
    EXPECT_GT(grad.abs().sum().item<double>(), 0.0) << item.key();
  }
}

TEST(Mamba2, AutoHeadDimIsTheLargestDivisorUpTo64) {
  EXPECT_EQ(testing::weight(make_mamba2(64, {{"d_state", int64_t{4}}}), "A_log").size(0), 2);  // E = 128: P = 64
  EXPECT_EQ(testing::weight(make_mamba2(48, {{"d_state", int64_t{4}}}), "A_log").size(0), 2);  // E = 96: P = 48
  EXPECT_EQ(testing::weight(make_mamba2(8, {{"d_state", int64_t{4}}}), "A_log").size(0), 1);  // E = 16: P = 16
}

TEST(Mamba2, Initialisation) {
  auto w = testing::weights_by_name(make_mamba2(16, {{"headdim", int64_t{2}}, {"d_state", int64_t{4}}}));
  const int64_t H = 16;  // E = 32, P = 2
  ASSERT_EQ(w["A_log"].size(0), H);
  EXPECT_GE(w["A_log"].min().item<double>(), std::log(1.0) - 1e-6);
  EXPECT_LE(w["A_log"].max().item<double>(), std::log(16.0) + 1e-6);
  EXPECT_TRUE(torch::equal(w["D"], torch::ones({H}, kF64)));
  EXPECT_TRUE(torch::equal(w["norm.weight"], torch::ones({32}, kF64)));
  auto dt = torch::softplus(w["dt_bias"]);
  EXPECT_GE(dt.min().item<double>(), 0.001 * (1 - 1e-5));
  EXPECT_LE(dt.max().item<double>(), 0.1 * (1 + 1e-5));
}

// docs/schemes.md, "Mamba-2": d(2E + 2Gn + H) + (E + 2Gn)(K + 1) + 3H + E + Ed.
TEST(Mamba2, ParameterCountFormula) {
  struct Case { int64_t d; int64_t n, K, P, G; };
  for (const auto& c : {Case{8, 3, 3, 4, 2}, Case{16, 8, 4, 8, 1}, Case{32, 128, 4, 64, 1}}) {
    auto mixer = make_mamba2(c.d, {{"d_state", c.n}, {"d_conv", c.K}, {"headdim", c.P}, {"ngroups", c.G}});
    const int64_t E = 2 * c.d, H = E / c.P, Gn = c.G * c.n;
    int64_t total = 0;
    for (const auto& p : mixer->parameters()) total += p.numel();
    EXPECT_EQ(total, c.d * (2 * E + 2 * Gn + H) + (E + 2 * Gn) * (c.K + 1) + 3 * H + E + E * c.d) << "d = " << c.d;
  }
}

TEST(Mamba2, MatmulFlopsEqualTheProductsTheForwardIssues) {
  for (int64_t chunk : {4, 5}) {  // N = 12: padded to 15 when Q = 5
    auto mixer = make_mamba2(8, small(chunk));
    auto x = torch::randn({2, 12, 8}, kF64);
    torch::NoGradGuard no_grad;
    FlopCounter counter;
    mixer->forward(x);
    const double counted = counter.matmul_flops();
    EXPECT_DOUBLE_EQ(mixer->cost(CostShape{2, 12, 8}).matmul_flops, counted) << "chunk " << chunk;
  }
}

TEST(Mamba2, RejectsHeadDimThatDoesNotDivideTheInnerWidth) {
  MixerContext context;
  context.d_model = 16;  // E = 32
  auto message_of = [&](std::map<std::string, ParamValue> params) -> std::string {
    try {
      Registry::global().create("mamba2", context, params);
    } catch (const RegistryError& e) {
      return e.what();
    }
    return "";
  };
  auto message = message_of({{"headdim", int64_t{12}}});  // 12 does not divide 32
  EXPECT_NE(message.find("headdim (12)"), std::string::npos) << message;
  EXPECT_NE(message.find("32"), std::string::npos) << message;
  EXPECT_EQ(message_of({}), "");  // auto headdim
  EXPECT_NE(message_of({{"headdim", int64_t{8}}, {"ngroups", int64_t{3}}}).find("ngroups"), std::string::npos);
  EXPECT_EQ(message_of({{"headdim", int64_t{8}}, {"ngroups", int64_t{2}}}), "");
}

}  // namespace
}  // namespace mixlab
