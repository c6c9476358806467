// `mamba` (Mamba-1) and its selective scan against float64 references written from the equations
// of arXiv 2312.00752, §3.2: a scalar loop over (b, e, t, state) for the scan, a forward rebuilt from the
// module's own weights, step × N = forward, causality, gradients, initialisation, parameter count
// and the matrix-product FLOPs cost() claims.

#include "core/registry.h"
#include "mixers/selective_scan.h"
#include "harness/flop_counter.h"
#include "tests/mixer_test_helpers.h"

#include <gtest/gtest.h>

#include <cmath>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

const auto kF64 = torch::TensorOptions().dtype(torch::kDouble);

double softplus(double x) { return std::log1p(std::exp(x)); }
double silu(double x) { return x / (1.0 + std::exp(-x)); }

// The scan one scalar at a time:
//   Δ = softplus(δ + b);  h_t[j] = exp(Δ A[e,j]) h_{t−1}[j] + Δ u_t B_t[j];  y_t = Σ_j h_t[j] C_t[j] + D u_t;
//   out_t = y_t · SiLU(z_t).
// u, delta, z: [B, E, N]; A: [E, n]; B, C: [B, n, N]; D, delta_bias: [E].  All float64.
torch::Tensor naive_scan(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                         const torch::Tensor& B, const torch::Tensor& C, const torch::Tensor& D,
                         const torch::Tensor& z, const torch::Tensor& delta_bias) {
  const int64_t batch = u.size(0), channels = u.size(1), seq_len = u.size(2), d_state = A.size(1);
  auto uc = u.contiguous(), dc = delta.contiguous(), zc = z.contiguous(), Bc = B.contiguous(),
       Cc = C.contiguous(), Ac = A.contiguous();
  auto ua = uc.accessor<double, 3>(), da = dc.accessor<double, 3>(), za = zc.accessor<double, 3>();
  auto Ba = Bc.accessor<double, 3>(), Ca = Cc.accessor<double, 3>();
  auto Aa = Ac.accessor<double, 2>();
  auto Da = D.accessor<double, 1>(), ba = delta_bias.accessor<double, 1>();
  auto out = torch::zeros({batch, channels, seq_len}, kF64);
  auto oa = out.accessor<double, 3>();
  std::vector<double> h(d_state);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t e = 0; e < channels; ++e) {
      std::fill(h.begin(), h.end(), 0.0);
      for (int64_t t = 0; t < seq_len; ++t) {
        const double step = softplus(da[b][e][t] + ba[e]);
        double y = Da[e] * ua[b][e][t];
        for (int64_t j = 0; j < d_state; ++j) {
          h[j] = std::exp(step * Aa[e][j]) * h[j] + step * ua[b][e][t] * Ba[b][j][t];
          y += h[j] * Ca[b][j][t];
        }
        oa[b][e][t] = y * silu(za[b][e][t]);
      }
    }
  return out;
}

struct ScanInputs {
  torch::Tensor u, delta, A, B, C, D, z, delta_bias;
};

ScanInputs random_scan_inputs(int64_t batch, int64_t channels, int64_t d_state, int64_t seq_len) {
  ScanInputs in;
  in.u = torch::randn({batch, channels, seq_len}, kF64);
  in.delta = torch::randn({batch, channels, seq_len}, kF64);
  in.A = -torch::rand({channels, d_state}, kF64) * 2 - 0.1;
  in.B = torch::randn({batch, d_state, seq_len}, kF64);
  in.C = torch::randn({batch, d_state, seq_len}, kF64);
  in.D = torch::randn({channels}, kF64);
  in.z = torch::randn({batch, channels, seq_len}, kF64);
  in.delta_bias = torch::randn({channels}, kF64) * 0.5;
  return in;
}

TEST(Mamba, ScanEqualsScalarRecurrence) {
  torch::manual_seed(1);
  auto in = random_scan_inputs(2, 5, 3, 17);
  auto fast = selective_scan(in.u, in.delta, in.A, in.B, in.C, in.D, in.z, in.delta_bias);
  auto slow = naive_scan(in.u, in.delta, in.A, in.B, in.C, in.D, in.z, in.delta_bias);
  ASSERT_EQ(fast.scalar_type(), torch::kDouble);
  EXPECT_TRUE(torch::allclose(fast, slow, 1e-12, 1e-12)) << (fast - slow).abs().max().item<double>();
}

TEST(Mamba, ScanStepEqualsScan) {
  torch::manual_seed(2);
  auto in = random_scan_inputs(2, 4, 3, 9);
  auto full = selective_scan(in.u, in.delta, in.A, in.B, in.C, in.D, in.z, in.delta_bias);
  auto state = torch::zeros({2, 4, 3}, kF64);
  for (int64_t t = 0; t < 9; ++t) {
    auto slice = [&](const torch::Tensor& x) { return x.select(-1, t); };
    auto y = selective_scan_step(state, slice(in.u), slice(in.delta), in.A, slice(in.B), slice(in.C), in.D, slice(in.z),
                                 in.delta_bias);
    EXPECT_TRUE(torch::allclose(y, slice(full), 1e-12, 1e-12)) << "t = " << t;
  }
}

// With the dt projection given, the step forms Δ's pre-activation δ W_Δᵀ itself: the same as the
// step on the product formed beforehand.
TEST(Mamba, ScanStepWithTheDeltaProjectionEqualsTheProductFirst) {
  torch::manual_seed(3);
  const int64_t batch = 2, E = 4, n = 3, R = 5;
  auto in = random_scan_inputs(batch, E, n, 1);
  auto slice = [](const torch::Tensor& x) { return x.select(-1, 0); };
  const auto low = torch::randn({batch, R}, kF64), weight = 0.4 * torch::randn({E, R}, kF64);
  auto state_fused = torch::randn({batch, E, n}, kF64), state_first = state_fused.clone();
  const auto fused = selective_scan_step(state_fused, slice(in.u), low, in.A, slice(in.B), slice(in.C), in.D,
                                         slice(in.z), in.delta_bias, weight);
  const auto first = selective_scan_step(state_first, slice(in.u), torch::matmul(low, weight.t()), in.A, slice(in.B),
                                         slice(in.C), in.D, slice(in.z), in.delta_bias);
  EXPECT_TRUE(torch::allclose(fused, first, 1e-12, 1e-12)) << (fused - first).abs().max().item<double>();
  EXPECT_TRUE(torch::allclose(state_fused, state_first, 1e-12, 1e-12));
}

// The closed-form final state (for a prefill) against N recurrence steps, in one time chunk and in
// chunks of 7 steps (2·4·3·7 elements).
TEST(Mamba, FinalStateEqualsTheRecurrence) {
  torch::manual_seed(4);
  for (int64_t seq_len : {1, 9, 300}) {
    auto in = random_scan_inputs(2, 4, 3, seq_len);
    auto state = torch::zeros({2, 4, 3}, kF64);
    for (int64_t t = 0; t < seq_len; ++t) {
      auto slice = [&](const torch::Tensor& x) { return x.select(-1, t); };
      selective_scan_step(state, slice(in.u), slice(in.delta), in.A, slice(in.B), slice(in.C), in.D, slice(in.z),
                          in.delta_bias);
    }
    for (int64_t chunk_elements : {int64_t{1} << 26, int64_t{2 * 4 * 3 * 7}}) {
      auto closed = selective_scan_final_state(in.u, in.delta, in.A, in.B, in.delta_bias, chunk_elements);
      ASSERT_EQ(closed.scalar_type(), torch::kDouble);
      EXPECT_TRUE(torch::allclose(closed, state, 1e-10, 1e-12))
          << "N = " << seq_len << ", chunk " << chunk_elements << ": " << (closed - state).abs().max().item<double>();
    }
  }
}

TEST(Mamba, ScanFloat32InputRunsInFloat32) {
  torch::manual_seed(3);
  auto in = random_scan_inputs(1, 3, 2, 8);
  auto f = [](const torch::Tensor& x) { return x.to(torch::kFloat); };
  auto out = selective_scan(f(in.u), f(in.delta), f(in.A), f(in.B), f(in.C), f(in.D), f(in.z), f(in.delta_bias));
  EXPECT_EQ(out.scalar_type(), torch::kFloat);
  auto slow = naive_scan(in.u, in.delta, in.A, in.B, in.C, in.D, in.z, in.delta_bias);
  EXPECT_TRUE(torch::allclose(out.to(torch::kDouble), slow, 1e-4, 1e-5));
}

// A tiny float64 mamba mixer (init_std larger than usual so that every path carries signal).
TokenMixerPtr make_mamba(int64_t d_model, std::map<std::string, ParamValue> params = {}) {
  return testing::make_float64("mamba", testing::tiny_context(d_model, 4, 0.2), params);
}

// The whole block rebuilt from the module's weights: explicit causal conv taps, the scalar scan.
torch::Tensor reference_forward(std::map<std::string, torch::Tensor> w, const torch::Tensor& x) {
  const int64_t E = w["D"].size(0), n = w["A_log"].size(1), K = w["conv1d.weight"].size(2),
                R = w["dt_proj.weight"].size(1), N = x.size(1);
  auto xz = torch::matmul(x, w["in_proj.weight"].t());
  auto x_inner = xz.narrow(-1, 0, E), z = xz.narrow(-1, E, E);  // [B, N, E]
  auto conv = torch::zeros_like(x_inner);
  for (int64_t t = 0; t < N; ++t)
    for (int64_t k = 0; k < K; ++k) {  // output t reads input t − (K−1) + k
      const int64_t source = t - (K - 1) + k;
      if (source < 0) continue;
      conv.select(1, t) += w["conv1d.weight"].select(1, 0).select(1, k) * x_inner.select(1, source);
    }
  auto u = torch::silu(conv + w["conv1d.bias"]);
  auto projected = torch::matmul(u, w["x_proj.weight"].t());
  auto delta = torch::matmul(projected.narrow(-1, 0, R), w["dt_proj.weight"].t());
  auto y = naive_scan(u.transpose(1, 2), delta.transpose(1, 2), -torch::exp(w["A_log"]),
                      projected.narrow(-1, R, n).transpose(1, 2), projected.narrow(-1, R + n, n).transpose(1, 2),
                      w["D"], z.transpose(1, 2), w["dt_proj.bias"]);
  return torch::matmul(y.transpose(1, 2), w["out_proj.weight"].t());
}

TEST(Mamba, ForwardEqualsReferenceFromWeights) {
  torch::manual_seed(4);
  auto mixer = make_mamba(16, {{"d_state", int64_t{4}}, {"d_conv", int64_t{3}}, {"dt_rank", int64_t{3}}});
  auto x = torch::randn({2, 11, 16}, kF64);
  auto out = mixer->forward(x);
  auto expected = reference_forward(testing::weights_by_name(mixer), x);
  ASSERT_EQ(out.sizes(), x.sizes());
  EXPECT_TRUE(torch::allclose(out, expected, 1e-11, 1e-12)) << (out - expected).abs().max().item<double>();
}

TEST(Mamba, StepTimesNEqualsForward) {
  torch::manual_seed(5);
  for (int64_t d_conv : {1, 4}) {
    auto mixer = make_mamba(16, {{"d_state", int64_t{5}}, {"d_conv", d_conv}});
    auto x = torch::randn({3, 10, 16}, kF64);
    auto full = mixer->forward(x);
    ASSERT_TRUE(mixer->has_step());
    auto state = mixer->initial_state(3, kF64);
    for (int64_t t = 0; t < 10; ++t) {
      auto y = mixer->step(x.select(1, t), state);
      EXPECT_TRUE(torch::allclose(y, full.select(1, t), 1e-11, 1e-12)) << "d_conv " << d_conv << " t " << t;
    }
    EXPECT_EQ(state.position, 10);
    // The state step() holds is what cost() reports.
    CostShape shape{3, 10, 8};
    EXPECT_DOUBLE_EQ(mixer->cost(shape).state_bytes, static_cast<double>(state.bytes()));
  }
}

TEST(Mamba, Causal) {
  torch::manual_seed(6);
  auto mixer = make_mamba(16, {{"d_state", int64_t{4}}});
  auto x = torch::randn({2, 12, 16}, kF64);
  auto changed = x.clone();
  changed.select(1, 7).add_(torch::randn({2, 16}, kF64));
  auto before = mixer->forward(x), after = mixer->forward(changed);
  EXPECT_TRUE(torch::allclose(before.narrow(1, 0, 7), after.narrow(1, 0, 7), 0, 1e-14));
  EXPECT_GT((before.narrow(1, 7, 5) - after.narrow(1, 7, 5)).abs().min().item<double>(), 0.0);
}

TEST(Mamba, FiniteGradientsToEveryParameter) {
  torch::manual_seed(7);
  auto mixer = make_mamba(16, {{"d_state", int64_t{4}}});
  auto x = torch::randn({2, 9, 16}, kF64);
  mixer->forward(x).square().sum().backward();
  for (const auto& item : mixer->named_parameters()) {
    const auto& grad = item.value().grad();
    ASSERT_TRUE(grad.defined()) << item.key();
    EXPECT_TRUE(torch::isfinite(grad).all().item<bool>()) << item.key();
    EXPECT_GT(grad.abs().sum().item<double>(), 0.0) << item.key();
  }
}

TEST(Mamba, InitialisationAsThePaper) {
  torch::manual_seed(8);
  const int64_t d = 32, n = 8;
  auto mixer = make_mamba(d, {{"d_state", n}, {"dt_min", 0.002}, {"dt_max", 0.05}});
  auto w = testing::weights_by_name(mixer);
  const int64_t E = 2 * d, R = 2;  // auto rank ⌈32/16⌉
  ASSERT_EQ(w["dt_proj.weight"].sizes(), (std::vector<int64_t>{E, R}));
  auto expected_A_log = torch::log(torch::arange(1, n + 1, kF64)).expand({E, n});
  EXPECT_TRUE(torch::allclose(w["A_log"], expected_A_log, 1e-6, 1e-6));
  EXPECT_TRUE(torch::equal(w["D"], torch::ones({E}, kF64)));
  EXPECT_LE(w["dt_proj.weight"].abs().max().item<double>(), 1.0 / std::sqrt(double(R)));
  auto dt = torch::softplus(w["dt_proj.bias"]);
  EXPECT_GE(dt.min().item<double>(), 0.002 * (1 - 1e-5));
  EXPECT_LE(dt.max().item<double>(), 0.05 * (1 + 1e-5));
  // log-uniform: the mean of log dt sits near the middle of [log dt_min, log dt_max] (±4 sd).
  const double middle = 0.5 * (std::log(0.002) + std::log(0.05));
  const double sd = (std::log(0.05) - std::log(0.002)) / std::sqrt(12.0 * E);
  EXPECT_NEAR(dt.log().mean().item<double>(), middle, 4 * sd);
  // The floor clamps draws below it.
  auto floored = torch::softplus(testing::weight(make_mamba(d, {{"dt_init_floor", 0.05}}), "dt_proj.bias"));
  EXPECT_GE(floored.min().item<double>(), 0.05 * (1 - 1e-5));
  EXPECT_GT(floored.max().item<double>(), 0.05 * (1 + 1e-3));  // draws above the floor stay
}

// docs/schemes.md, "Mamba": 3·E·d + E·(K + 2R + 3n + 3).
TEST(Mamba, ParameterCountFormula) {
  struct Case { int64_t d; double expand; int64_t n, K, rank, E, R; };
  for (const auto& c : {Case{32, 2.0, 8, 4, 0, 64, 2}, Case{20, 1.5, 5, 3, 7, 30, 7}, Case{16, 2.0, 16, 1, 0, 32, 1}}) {
    auto mixer = make_mamba(c.d, {{"expand", c.expand}, {"d_state", c.n}, {"d_conv", c.K}, {"dt_rank", c.rank}});
    int64_t total = 0;
    for (const auto& p : mixer->parameters()) total += p.numel();
    EXPECT_EQ(total, 3 * c.E * c.d + c.E * (c.K + 2 * c.R + 3 * c.n + 3)) << "d = " << c.d;
  }
}

TEST(Mamba, MatmulFlopsEqualTheProductsTheForwardIssues) {
  torch::manual_seed(9);
  for (int64_t d_conv : {1, 4}) {
    auto mixer = make_mamba(24, {{"d_state", int64_t{6}}, {"d_conv", d_conv}, {"dt_rank", int64_t{5}}});
    auto x = torch::randn({2, 13, 24}, kF64);
    torch::NoGradGuard no_grad;
    FlopCounter counter;
    mixer->forward(x);
    const double counted = counter.matmul_flops();
    EXPECT_DOUBLE_EQ(mixer->cost(CostShape{2, 13, 8}).matmul_flops, counted);
    EXPECT_GT(counted, 0.0);
  }
}

TEST(Mamba, CostFormula) {
  auto mixer = make_mamba(32, {{"d_state", int64_t{16}}, {"d_conv", int64_t{4}}});
  const double N = 100, d = 32, E = 64, R = 2, n = 16, K = 4;
  auto cost = mixer->cost(CostShape{1, 100, 2});
  EXPECT_DOUBLE_EQ(cost.flops, 2 * N * (2 * E * d + E * (R + 2 * n) + R * E + E * d) + 2 * N * E * K +
                                   8 * N * E * n + 6 * N * E);
  // bf16 model: conv state in 2 bytes, SSM state in float32.
  EXPECT_DOUBLE_EQ(cost.state_bytes, E * ((K - 1) * 2 + n * 4));
}

TEST(Mamba, RejectsInvertedDtRange) {
  MixerContext context;
  try {
    Registry::global().create("mamba", context, {{"dt_min", 0.5}, {"dt_max", 0.1}});
    FAIL() << "expected a RegistryError";
  } catch (const RegistryError& e) {
    EXPECT_NE(std::string(e.what()).find("dt_min"), std::string::npos);
  }
}

}  // namespace
}  // namespace mixlab
