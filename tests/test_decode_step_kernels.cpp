// The decoding-step kernels (mixers/cuda/decode_step.cu) against their references on the CPU in
// float64: causal_depthwise_conv_step (mixers/causal_depthwise_conv.h) and selective_scan_step
// (mixers/selective_scan.h), the functions that dispatch to them; the fused in-projection and conv
// step (mixers/cuda/linear_conv_step.cu) against the float64 product and conv step.  Inputs as Mamba's static step
// passes them: the conv input and the gate are column slices of in_proj's [B, 2E] output, B and C
// slices of x_proj's.  Without a GPU the tests skip.

#include "core/implementation.h"
#include "mixers/causal_depthwise_conv.h"
#include "mixers/linear_conv_step.h"
#include "mixers/selective_scan.h"
#include "tests/input_norm_reference.h"

#include <gtest/gtest.h>

namespace MIXLAB_UNITY_ID {

using mixlab::ImplementationLog;

double max_error(const torch::Tensor& got, const torch::Tensor& want) {
  return (got.to(torch::kCPU).to(torch::kDouble) - want.to(torch::kDouble)).abs().max().item<double>();
}

double tolerance(torch::Dtype dtype) { return dtype == torch::kFloat ? 1e-5 : 3e-2; }


TEST(DecodeStepKernels, CausalConvStepEqualsTheReference) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  torch::NoGradGuard no_grad;
  const int64_t batch = 3, channels = 70, kernel = 4;
  for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
    for (bool silu : {false, true}) {
      torch::manual_seed(1);
      const auto history = torch::randn({batch, channels, kernel - 1}, torch::kDouble);
      const auto wide = torch::randn({batch, 2 * channels}, torch::kDouble);  // in_proj's [B, 2E]
      const auto weight = torch::randn({channels, 1, kernel}, torch::kDouble);
      const auto bias = torch::randn({channels}, torch::kDouble);
      // The device inputs, rounded to the dtype; the reference reads the same rounded values.
      auto on_device = [&](const torch::Tensor& t) { return t.to(torch::kCUDA, dtype); };
      auto device_history = on_device(history);
      const auto device_wide = on_device(wide);
      auto reference_history = device_history.to(torch::kCPU, torch::kDouble);
      const auto reference_out = mixlab::causal_depthwise_conv_step(
          reference_history, device_wide.narrow(1, 0, channels).to(torch::kCPU, torch::kDouble),
          on_device(weight).to(torch::kCPU, torch::kDouble), on_device(bias).to(torch::kCPU, torch::kDouble), silu);
      ImplementationLog log;
      const auto out = mixlab::causal_depthwise_conv_step(device_history, device_wide.narrow(1, 0, channels),
                                                          on_device(weight), on_device(bias), silu);
      EXPECT_EQ(log.summary(), "causal_conv_step=kernel");
      EXPECT_EQ(out.scalar_type(), dtype);
      EXPECT_LT(max_error(out, reference_out), tolerance(dtype)) << "silu " << silu;
      EXPECT_LT(max_error(device_history, reference_history), 1e-12) << "the history shifts exactly";
    }
  }
}

TEST(DecodeStepKernels, SelectiveStateUpdateEqualsTheReference) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  torch::NoGradGuard no_grad;
  const int64_t batch = 3, channels = 70, rank = 5;
  // n = 16: one state per lane of the kernel's 16-lane group; 5: lanes left idle; 40: lanes that
  // hold several states (j, j + 16, ...)
  for (int64_t n : {16, 5, 40})
  for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
    SCOPED_TRACE("n " + std::to_string(n) + ", " + std::string(c10::toString(dtype)));
    torch::manual_seed(2);
    const auto state = torch::randn({batch, channels, n}, torch::kDouble);
    const auto u = torch::randn({batch, channels}, torch::kDouble);
    const auto delta = torch::randn({batch, channels}, torch::kDouble) - 1.0;
    const auto projected = torch::randn({batch, rank + 2 * n}, torch::kDouble);  // x_proj's [B, R + 2n]
    const auto xz = torch::randn({batch, 2 * channels}, torch::kDouble);
    const auto A = -torch::exp(0.5 * torch::randn({channels, n}, torch::kDouble));
    const auto D = torch::randn({channels}, torch::kDouble), bias = 0.3 * torch::randn({channels}, torch::kDouble);
    auto act = [&](const torch::Tensor& t) { return t.to(torch::kCUDA, dtype); };
    auto f32 = [&](const torch::Tensor& t) { return t.to(torch::kCUDA, torch::kFloat); };
    auto back = [](const torch::Tensor& t) { return t.to(torch::kCPU, torch::kDouble); };
    auto device_state = f32(state);
    const auto device_projected = act(projected), device_xz = act(xz);
    auto reference_state = back(device_state);
    const auto reference_out = mixlab::selective_scan_step(
        reference_state, back(act(u)), back(act(delta)), back(f32(A)), back(device_projected.narrow(1, rank, n)),
        back(device_projected.narrow(1, rank + n, n)), back(f32(D)), back(device_xz.narrow(1, channels, channels)),
        back(f32(bias)));
    ImplementationLog log;
    const auto out = mixlab::selective_scan_step(device_state, act(u), act(delta), f32(A),
                                                 device_projected.narrow(1, rank, n),
                                                 device_projected.narrow(1, rank + n, n), f32(D),
                                                 device_xz.narrow(1, channels, channels), f32(bias));
    EXPECT_EQ(log.summary(), "selective_scan_step=kernel");
    EXPECT_EQ(out.scalar_type(), dtype);
    EXPECT_LT(max_error(out, reference_out), tolerance(dtype) * (1 + reference_out.abs().max().item<double>()));
    EXPECT_LT(max_error(device_state, reference_state), 1e-5 * (1 + reference_state.abs().max().item<double>()))
        << "the state is float32 whatever the activations' dtype";
  }
}

// The kernel with Mamba's dt projection folded in (δ: [B, R], W_Δ: [E, R]) against the float64
// step on δ W_Δᵀ formed first.  R = 128 (mamba-546m: 8 products per lane), 5 (lanes left idle), 37.
TEST(DecodeStepKernels, SelectiveStateUpdateFormsTheDeltaProjection) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  torch::NoGradGuard no_grad;
  const int64_t batch = 3, channels = 70, n = 16;
  for (int64_t rank : {128, 5, 37})
  for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
    SCOPED_TRACE("rank " + std::to_string(rank) + ", " + std::string(c10::toString(dtype)));
    torch::manual_seed(5);
    auto act = [&](const torch::Tensor& t) { return t.to(torch::kCUDA, dtype); };
    auto f32 = [&](const torch::Tensor& t) { return t.to(torch::kCUDA, torch::kFloat); };
    auto back = [](const torch::Tensor& t) { return t.to(torch::kCPU, torch::kDouble); };
    // x_proj's output [B, R + 2n]: δ, B, C as column slices of one row, as the mixer passes them
    const auto projected = act(torch::randn({batch, rank + 2 * n}, torch::kDouble));
    const auto weight = act(torch::randn({channels, rank}, torch::kDouble) / std::sqrt(static_cast<double>(rank)));
    const auto u = act(torch::randn({batch, channels}, torch::kDouble)), z = act(torch::randn({batch, channels}, torch::kDouble));
    const auto A = f32(-torch::exp(0.5 * torch::randn({channels, n}, torch::kDouble)));
    const auto D = f32(torch::randn({channels}, torch::kDouble)), bias = f32(0.3 * torch::randn({channels}, torch::kDouble));
    auto device_state = f32(torch::randn({batch, channels, n}, torch::kDouble));
    auto reference_state = back(device_state);
    const auto low = projected.narrow(1, 0, rank), B = projected.narrow(1, rank, n), C = projected.narrow(1, rank + n, n);
    const auto reference_out =
        mixlab::selective_scan_step(reference_state, back(u), torch::matmul(back(low), back(weight).t()), back(A),
                                    back(B), back(C), back(D), back(z), back(bias));
    ImplementationLog log;
    const auto out = mixlab::selective_scan_step(device_state, u, low, A, B, C, D, z, bias, weight);
    EXPECT_EQ(log.summary(), "selective_scan_step=kernel");
    EXPECT_LT(max_error(out, reference_out), tolerance(dtype) * (1 + reference_out.abs().max().item<double>()));
    EXPECT_LT(max_error(device_state, reference_state), 1e-5 * (1 + reference_state.abs().max().item<double>()));
  }
}

// Three steps in a row of the fused kernel, each against the float64 product for xz (bf16 rounding
// and float32 sums: 2^-8 |xz| + 1e-5 Σ|x w|) and the float64 conv step on the history the kernel
// held and the xz it stored for u (2^-8 |u| + 1e-4); the history shifted exactly.  Shapes: Mamba's
// (C = out / 2), C not half of out, rows across two of the kernel's 16-row tiles, two taps.  With a
// norm folded into the product (core/input_norm.h), x is the float64 RMSNorm(h)·g and the bound
// adds the rounding of bf16(h·g) (2^-8 Σ|x w|).
TEST(DecodeStepKernels, LinearConvStepEqualsTheProductThenTheConvStep) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  torch::NoGradGuard no_grad;
  struct Shape {
    int64_t rows, in, channels, out, taps;
  };
  auto cpu = [](const torch::Tensor& t) { return t.to(torch::kCPU, torch::kDouble); };
  for (const Shape s : {Shape{16, 256, 160, 320, 4}, Shape{3, 64, 70, 140, 4}, Shape{17, 128, 40, 48, 2}}) {
    for (int variant = 0; variant < 3; ++variant) {  // no bias; biases; biases and a norm
      const bool with_bias = variant > 0, normed = variant == 2;
      torch::manual_seed(s.rows + s.out);
      const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
      const auto weight = torch::randn({s.out, s.in}, bf16) * 0.1;
      const auto bias = with_bias ? torch::randn({s.out}, bf16) : torch::Tensor();
      const auto conv_weight = torch::randn({s.channels, 1, s.taps}, bf16) * 0.5;
      const auto conv_bias = with_bias ? torch::randn({s.channels}, bf16) : torch::Tensor();
      auto history = torch::randn({s.rows, s.channels, s.taps - 1}, bf16);
      const std::string what = "rows " + std::to_string(s.rows) + ", C " + std::to_string(s.channels) + ", out " +
                               std::to_string(s.out) + ", taps " + std::to_string(s.taps) + (with_bias ? ", biases" : "") +
                               (normed ? ", normed" : "");
      const auto norm = normed ? mixlab::testing::random_input_norm(s.in, bf16) : mixlab::InputNorm{};
      for (int step = 0; step < 3; ++step) {
        const auto x = torch::randn({s.rows, s.in}, bf16) * (normed ? 4.0 : 1.0);
        const auto history_before = cpu(history);
        ImplementationLog log;
        const auto [xz, u] = mixlab::linear_conv_step(x, weight, bias, history, conv_weight, conv_bias, norm);
        ASSERT_EQ(log.summary(), "linear_conv_step=kernel") << what;
        // xz against the float64 product
        const auto x_read = normed ? mixlab::testing::normalised_float64(x, norm) : cpu(x);
        auto exact = torch::matmul(x_read, cpu(weight).t());
        if (with_bias) exact = exact + cpu(bias);
        const auto magnitude = torch::matmul(x_read.abs(), cpu(weight).abs().t());
        const double rounding = normed ? std::ldexp(1.0, -8) : 0.0;
        EXPECT_TRUE(((cpu(xz) - exact).abs() <= exact.abs() * std::ldexp(1.0, -8) + magnitude * (1e-5 + rounding) + 1e-30)
                        .all()
                        .item<bool>())
            << what << ", step " << step << ": xz";
        // u against the float64 conv step on the history before and the xz the kernel stored
        auto reference_history = history_before.clone();
        const auto reference_u = mixlab::causal_depthwise_conv_step(
            reference_history, cpu(xz).narrow(1, 0, s.channels), cpu(conv_weight),
            with_bias ? cpu(conv_bias) : torch::Tensor(), /*silu=*/true);
        EXPECT_TRUE(((cpu(u) - reference_u).abs() <= reference_u.abs() * std::ldexp(1.0, -8) + 1e-4).all().item<bool>())
            << what << ", step " << step << ": u, worst error " << max_error(u, reference_u);
        EXPECT_EQ(max_error(history, reference_history), 0.0) << what << ", step " << step << ": the history";
      }
    }
  }
}

// With a gradient asked for, the kernels are not taken: the differentiable reference runs.
TEST(DecodeStepKernels, ARequestedGradientKeepsTheReference) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  auto history = torch::zeros({2, 8, 3}, torch::kCUDA);
  const auto weight = torch::randn({8, 1, 4}, torch::kCUDA).requires_grad_();
  ImplementationLog log;
  const auto out = mixlab::causal_depthwise_conv_step(history, torch::randn({2, 8}, torch::kCUDA), weight);
  EXPECT_EQ(log.summary(), "causal_conv_step=reference");
  EXPECT_TRUE(out.requires_grad());
}

}  // namespace
