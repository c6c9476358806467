// mixlab::causal_conv_silu (mixers/causal_depthwise_conv.h) against its equation computed here in
// float64, tap by tap:
//
//   u[b, e, t] = SiLU(bias[e] + Σ_{i=0}^{K-1} w[e, i] · x[b, t − (K−1−i), e])      (x at t < 0 is 0)
//
// x: [B, N, E], read through views as Mamba passes it (the first E columns of in_proj's [B, N, 2E],
// time stride 2E) and others; u: [B, E, N].  On the CPU the reference (LibTorch's conv1d and SiLU);
// on a GPU the fused kernels (mixers/cuda/causal_conv_silu.cu), forward and the gradients of x,
// weight and bias against autograd of the float64 equation.  Without a GPU those tests skip.

#include "core/implementation.h"
#include "mixers/causal_depthwise_conv.h"
#include "tests/gpu_test.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#ifdef MIXLAB_WITH_CUDA
#include "mixers/cuda/kernels.h"
#endif

namespace MIXLAB_UNITY_ID {

using mixlab::ImplementationLog;

// The equation in the dtype of its operands (float64 here): x [B, N, E], weight [E, 1, K], bias
// [E] or undefined -> [B, E, N].  Tap i reads x shifted later by s = K−1−i steps (zeros first).
torch::Tensor conv_silu_equation(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  const int64_t batch = x.size(0), n = x.size(1), channels = x.size(2), kernel = weight.size(2);
  auto c = bias.defined() ? bias.expand({batch, n, channels}) : torch::zeros_like(x);
  for (int64_t i = 0; i < kernel; ++i) {
    const int64_t shift = std::min(kernel - 1 - i, n);
    auto shifted = torch::cat({torch::zeros({batch, shift, channels}, x.options()), x.narrow(1, 0, n - shift)}, 1);
    c = c + weight.select(1, 0).select(1, i) * shifted;  // w[:, i] broadcast over [B, N, E]
  }
  return (c * torch::sigmoid(c)).transpose(1, 2);
}

double relative_error(const torch::Tensor& got, const torch::Tensor& want) {
  auto g = got.to(torch::kCPU).to(torch::kDouble), w = want.to(torch::kCPU).to(torch::kDouble);
  EXPECT_TRUE(torch::isfinite(g).all().item<bool>()) << "non-finite values (an unwritten output?)";
  return (g - w).norm().item<double>() / std::max(w.norm().item<double>(), 1e-30);
}

struct ConvCase {
  int64_t batch, n, channels, kernel;
};

// x: [B, N, E] as a view: `wide` takes the first E columns of [B, N, 2E] (Mamba's layout); else
// the transpose of a [N, B, E] tensor (batch stride E, time stride B·E).
torch::Tensor strided_input(const ConvCase& k, bool wide, const torch::TensorOptions& options) {
  if (wide) return torch::randn({k.batch, k.n, 2 * k.channels}, options).narrow(-1, 0, k.channels);
  return torch::randn({k.n, k.batch, k.channels}, options).transpose(0, 1);
}

// The reference (CPU) on a strided input: the equation's values, in float64 to rounding and in
// float32 to float32 rounding; K = 1, 2, 4 and N < K; with and without bias.
TEST(CausalConvSilu, ReferenceEqualsTheEquation) {
  torch::manual_seed(3);
  for (const ConvCase k : {ConvCase{2, 9, 5, 1}, ConvCase{3, 7, 4, 2}, ConvCase{2, 11, 6, 4}, ConvCase{2, 2, 3, 4},
                           ConvCase{1, 1, 2, 4}}) {
    for (bool wide : {true, false}) {
      for (bool with_bias : {true, false}) {
        const auto x = strided_input(k, wide, torch::kDouble);
        const auto weight = torch::randn({k.channels, 1, k.kernel}, torch::kDouble);
        const auto bias = with_bias ? torch::randn({k.channels}, torch::kDouble) : torch::Tensor();
        SCOPED_TRACE("B " + std::to_string(k.batch) + " N " + std::to_string(k.n) + " E " +
                     std::to_string(k.channels) + " K " + std::to_string(k.kernel) + (wide ? " wide" : " [N,B,E]ᵀ") +
                     (with_bias ? "" : " no bias"));
        ImplementationLog log;
        const auto u = mixlab::causal_conv_silu(x, weight, bias);
        EXPECT_EQ(log.summary(), "causal_conv_silu=reference");
        ASSERT_EQ(u.sizes(), (std::vector<int64_t>{k.batch, k.channels, k.n}));
        const auto want = conv_silu_equation(x, weight, bias);
        EXPECT_LT((u - want).abs().max().item<double>(), 1e-12);
        const auto u32 = mixlab::causal_conv_silu(x.to(torch::kFloat), weight.to(torch::kFloat),
                                                  with_bias ? bias.to(torch::kFloat) : bias);
        EXPECT_EQ(u32.scalar_type(), torch::kFloat);
        EXPECT_LT(relative_error(u32, want), 1e-6);
      }
    }
  }
}

// The reference's gradients (autograd through conv1d) are the equation's.
TEST(CausalConvSilu, ReferenceGradientsEqualTheEquations) {
  torch::manual_seed(4);
  const ConvCase k{2, 10, 3, 4};
  const auto wide = torch::randn({k.batch, k.n, 2 * k.channels}, torch::kDouble).requires_grad_(true);
  const auto weight = torch::randn({k.channels, 1, k.kernel}, torch::kDouble).requires_grad_(true);
  const auto bias = torch::randn({k.channels}, torch::kDouble).requires_grad_(true);
  const auto g = torch::randn({k.batch, k.channels, k.n}, torch::kDouble);
  const auto x = wide.narrow(-1, 0, k.channels);
  const auto got = torch::autograd::grad({mixlab::causal_conv_silu(x, weight, bias)}, {wide, weight, bias}, {g});
  const auto want = torch::autograd::grad({conv_silu_equation(x, weight, bias)}, {wide, weight, bias}, {g});
  for (size_t i = 0; i < got.size(); ++i) EXPECT_LT((got[i] - want[i]).abs().max().item<double>(), 1e-12) << i;
}

#ifdef MIXLAB_WITH_CUDA

// Fill the CUDA caching allocator's free blocks with NaN, so that an output element the kernels do
// not write shows up as NaN.
void poison_allocator() {
  auto big = torch::full({16 << 20}, NAN, torch::TensorOptions().device(torch::kCUDA));
  auto small = torch::full({200000}, NAN, torch::TensorOptions().device(torch::kCUDA));
}

double tolerance(torch::ScalarType dtype) {
  return dtype == torch::kFloat ? 1e-5 : dtype == torch::kHalf ? 3e-3 : 1.5e-2;
}

// The kernels through mixlab::causal_conv_silu on CUDA: x (dtype) as the first E columns of
// [B, N, 2E] (`wide`, Mamba's layout) or contiguous [B, N, E]; weight and bias in param_dtype.
// u, dx (and zero in the other half of the wide tensor), dweight, dbias against autograd of the
// float64 equation on the same rounded inputs; |x| spread so that σ(c) saturates somewhere.
void check_kernel(const ConvCase& k, torch::ScalarType dtype, torch::ScalarType param_dtype, bool wide,
                  bool with_bias = true) {
  SCOPED_TRACE(std::string(c10::toString(dtype)) + " weight " + c10::toString(param_dtype) + " B " +
               std::to_string(k.batch) + " N " + std::to_string(k.n) + " E " + std::to_string(k.channels) + " K " +
               std::to_string(k.kernel) + (wide ? " (time stride 2E)" : " (contiguous)") + (with_bias ? "" : " no bias"));
  torch::manual_seed(7 + k.n + k.channels);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const int64_t width = wide ? 2 * k.channels : k.channels;
  const auto leaf = (torch::randn({k.batch, k.n, width}, cuda) * 2).to(dtype).requires_grad_(true);
  const auto weight = torch::randn({k.channels, 1, k.kernel}, cuda).to(param_dtype).requires_grad_(true);
  const auto bias = with_bias ? torch::randn({k.channels}, cuda).to(param_dtype).requires_grad_(true) : torch::Tensor();
  const auto x = leaf.narrow(-1, 0, k.channels);
  ASSERT_TRUE(mixlab::cuda::causal_conv_silu_supported(x, weight, bias));
  poison_allocator();
  ImplementationLog log;
  const auto u = mixlab::causal_conv_silu(x, weight, bias);
  EXPECT_EQ(log.summary(), "causal_conv_silu=kernel");
  ASSERT_EQ(u.sizes(), (std::vector<int64_t>{k.batch, k.channels, k.n}));
  EXPECT_TRUE(u.is_contiguous());
  EXPECT_EQ(u.scalar_type(), dtype);
  const auto g = torch::randn(u.sizes(), cuda.dtype(dtype));
  poison_allocator();
  u.backward(g);

  auto f64 = [](const torch::Tensor& t) { return t.detach().cpu().to(torch::kDouble).requires_grad_(true); };
  const auto x64 = f64(x), w64 = f64(weight), b64 = with_bias ? f64(bias) : torch::Tensor();
  const auto want = conv_silu_equation(x64, w64, b64);
  want.backward(g.cpu().to(torch::kDouble));
  // dweight, dbias in float32 sum float32 products of the same rounded inputs: near float32 rounding
  // even beside bf16 x.
  const double tol = tolerance(dtype), param_tol = param_dtype == torch::kFloat ? 1e-4 : tolerance(param_dtype);
  EXPECT_LT(relative_error(u, want), tol) << "u";
  EXPECT_LT(relative_error(leaf.grad().narrow(-1, 0, k.channels), x64.grad()), tol) << "dx";
  if (wide) {
    EXPECT_EQ(leaf.grad().narrow(-1, k.channels, k.channels).abs().max().item<double>(), 0.0) << "dz";
  }
  EXPECT_EQ(weight.grad().scalar_type(), param_dtype);
  EXPECT_LT(relative_error(weight.grad(), w64.grad()), param_tol) << "dweight";
  if (with_bias) {
    EXPECT_LT(relative_error(bias.grad(), b64.grad()), param_tol) << "dbias";
  }
}

#endif

// Shapes: N and E multiples of the 64 × 64 tile and not, N < K, K = 1 and 4 (and 8, the largest),
// x with time stride 2E (Mamba's layout) and contiguous; float32, bf16 (with bf16 and float32
// weights: the autocast case), fp16; no bias.
TEST(CausalConvSilu, KernelMatchesFloat64Reference) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  const std::vector<ConvCase> cases = {{2, 128, 128, 4}, {3, 130, 100, 4}, {2, 77, 64, 1},  {1, 3, 70, 4},
                                       {5, 64, 37, 2},   {2, 300, 200, 8}, {1, 1, 1, 4},    {7, 65, 65, 3}};
  for (const auto& k : cases)
    for (const auto dtype : {torch::kFloat, torch::kBFloat16}) check_kernel(k, dtype, dtype, /*wide=*/true);
  for (const auto& k : {cases[1], cases[2]}) {
    check_kernel(k, torch::kFloat, torch::kFloat, /*wide=*/false);
    check_kernel(k, torch::kBFloat16, torch::kFloat, /*wide=*/true);
    check_kernel(k, torch::kHalf, torch::kHalf, /*wide=*/true);
    check_kernel(k, torch::kFloat, torch::kFloat, /*wide=*/true, /*with_bias=*/false);
  }
  // A batch larger than the backward's batch groups, so that blocks walk several sequences.
  check_kernel({600, 70, 130, 4}, torch::kBFloat16, torch::kFloat, /*wide=*/true);
#endif
}

// dweight and dbias are reduced in a fixed order: two backward passes give the same bits.
TEST(CausalConvSilu, KernelWeightGradientsAreDeterministic) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  torch::manual_seed(5);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const auto x = torch::randn({300, 150, 2 * 96}, cuda).narrow(-1, 0, 96);
  const auto weight = torch::randn({96, 1, 4}, cuda).requires_grad_(true);
  const auto bias = torch::randn({96}, cuda).requires_grad_(true);
  const auto g = torch::randn({300, 96, 150}, cuda);
  auto grads = [&] { return torch::autograd::grad({mixlab::causal_conv_silu(x, weight, bias)}, {weight, bias}, {g}); };
  const auto first = grads(), second = grads();
  EXPECT_TRUE(torch::equal(first[0], second[0]));
  EXPECT_TRUE(torch::equal(first[1], second[1]));
#endif
}

// What the kernels do not take runs the reference; the binding refuses it.
TEST(CausalConvSilu, DispatchRunsTheReferenceForWhatTheKernelDoesNotTake) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const auto x = torch::randn({2, 9, 6}, cuda), w = torch::randn({6, 1, 4}, cuda), b = torch::randn({6}, cuda);
  EXPECT_TRUE(mixlab::cuda::causal_conv_silu_supported(x, w, b));
  EXPECT_FALSE(mixlab::cuda::causal_conv_silu_supported(x.to(torch::kDouble), w.to(torch::kDouble), b.to(torch::kDouble)));
  EXPECT_FALSE(mixlab::cuda::causal_conv_silu_supported(x.transpose(1, 2).contiguous().transpose(1, 2), w, b));
  EXPECT_FALSE(mixlab::cuda::causal_conv_silu_supported(x, torch::randn({6, 1, 9}, cuda), b));  // K > 8
  EXPECT_FALSE(mixlab::cuda::causal_conv_silu_supported(x, w.to(torch::kBFloat16), b));  // mixed parameters
  EXPECT_FALSE(mixlab::cuda::causal_conv_silu_supported(x.to(torch::kBFloat16), w.to(torch::kHalf), b.to(torch::kHalf)));
  const auto x64 = x.to(torch::kDouble);
  ImplementationLog log;
  const auto u = mixlab::causal_conv_silu(x64, w.to(torch::kDouble), b.to(torch::kDouble));
  EXPECT_EQ(log.summary(), "causal_conv_silu=reference");
  EXPECT_LT(relative_error(u, conv_silu_equation(x64.cpu(), w.cpu().to(torch::kDouble), b.cpu().to(torch::kDouble))),
            1e-12);
  try {
    mixlab::cuda::causal_conv_silu(x64, w.to(torch::kDouble), b.to(torch::kDouble));
    ADD_FAILURE() << "float64 reached the kernel";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what()).find("runs the reference"), std::string::npos) << error.what();
  }
#endif
}

}  // namespace MIXLAB_UNITY_ID
