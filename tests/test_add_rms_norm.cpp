// The residual add fused with the next RMSNorm (harness/add_rms_norm.h):
//   h = x + r,   y = RMSNorm(h)·w = h·rsqrt(mean(h²) + eps)·w
// On the CPU: the reference is the composed form bit for bit, and the model's hidden states equal
// the unfused pre-norm loop bit for bit.  On CUDA (harness/cuda/add_rms_norm.cu; skipped without a
// GPU): h, y and the gradients dx, dr, dw against float64 on the CPU from the same inputs, for
// bf16 / fp16 / float32, mixed residual and branch dtypes, ragged row counts, widths that fill a
// lane's vectors and ones that do not, with and without a gradient reaching h along the residual
// path; dw bit-identical run to run; the dtype rule under autocast; and the dispatch.  The RMSNorm
// alone (harness/add_rms_norm.h rms_norm: the same kernels without the residual) likewise.

#include "core/compat.h"
#include "core/implementation.h"
#include "harness/add_rms_norm.h"
#include "harness/model.h"
#include "tests/gpu_test.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#ifdef MIXLAB_WITH_CUDA
#include "harness/cuda/kernels.h"
#endif

#include <map>
#include <string>
#include <vector>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

constexpr double kEps = 1e-6;


// ------------------------------------------------------------------------------ CPU

TEST(AddRmsNorm, CpuRunsTheComposedFormBitForBit) {
  torch::manual_seed(5);
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16, torch::kFloat64}) {
    const auto x = torch::randn({2, 5, 24}).to(dtype), r = torch::randn({2, 5, 24}).to(dtype);
    const auto w = torch::randn({24});
    ImplementationLog log;
    const auto [h, y] = add_rms_norm(x, r, w, kEps);
    EXPECT_EQ(log.summary(), "add_rms_norm=reference");
    EXPECT_TRUE(torch::equal(h, x + r)) << dtype;
    EXPECT_TRUE(torch::equal(y, compat::rms_norm(x + r, w, kEps))) << dtype;
  }
}

// The RMSNorm alone runs compat::rms_norm on the CPU, bit for bit.
TEST(RmsNorm, CpuRunsCompatRmsNormBitForBit) {
  torch::manual_seed(6);
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16, torch::kFloat64}) {
    const auto x = torch::randn({3, 4, 40}).to(dtype), w = torch::randn({40});
    ImplementationLog log;
    const auto y = rms_norm(x, w, kEps);
    EXPECT_EQ(log.summary(), "rms_norm=reference");
    EXPECT_TRUE(torch::equal(y, compat::rms_norm(x, w, kEps))) << dtype;
  }
}

// hidden_states (the fused loop) against the pre-norm loop written out with the model's own
// weights: h = h + F_i(RMSNorm_i(h), h), then the final RMSNorm.  Norm weights drawn at random.
TEST(AddRmsNorm, ModelHiddenStatesEqualTheUnfusedLoopBitForBit) {
  torch::manual_seed(7);
  ModelConfig config;
  config.vocab_size = 40;
  config.d_model = 16;
  config.n_heads = 2;
  config.n_layers = 2;
  config.pattern = {SublayerConfig{"attention", {}}, SublayerConfig{"mlp", {}}};
  LanguageModel model(config);
  torch::NoGradGuard no_grad;
  std::map<std::string, torch::Tensor> weights;
  for (const auto& item : model->named_parameters()) {
    if (item.key().find("norm.weight") != std::string::npos) item.value().uniform_(0.5, 1.5);
    weights[item.key()] = item.value();
  }
  const auto tokens = torch::randint(0, config.vocab_size, {2, 9}, torch::kLong);
  auto h = torch::embedding(weights.at("embed_tokens.weight"), tokens);
  const auto& sublayers = model->sublayers();
  for (size_t i = 0; i < sublayers.size(); ++i) {
    const auto& w = weights.at("layers." + std::to_string(i) + ".norm.weight");
    h = h + sublayers[i]->forward_with_residual(compat::rms_norm(h, w, config.norm_eps), h);
  }
  const auto want = compat::rms_norm(h, weights.at("norm.weight"), config.norm_eps);
  EXPECT_TRUE(torch::equal(model->hidden_states(tokens), want));
}

// ------------------------------------------------------------------------------ CUDA

#ifdef MIXLAB_WITH_CUDA
double relative_error(const torch::Tensor& got, const torch::Tensor& want) {
  const auto g = got.to(torch::kCPU).to(torch::kDouble), w = want.to(torch::kCPU).to(torch::kDouble);
  EXPECT_TRUE(torch::isfinite(g).all().item<bool>()) << "non-finite values (an unwritten output?)";
  return (g - w).norm().item<double>() / std::max(w.norm().item<double>(), 1e-30);
}

double tolerance(torch::ScalarType dtype) {
  return dtype == torch::kFloat32 ? 1e-5 : dtype == torch::kHalf ? 2e-3 : 1e-2;
}

// Fill the caching allocator's free blocks with NaN, so an output element not written shows.
void poison_allocator() {
  auto big = torch::full({16 << 20}, NAN, torch::TensorOptions().device(torch::kCUDA));
  auto small = torch::full({200000}, NAN, torch::TensorOptions().device(torch::kCUDA));
}
#endif

struct AddNormCase {
  std::vector<int64_t> shape;  // [..., d]
  torch::ScalarType x, r, w;
  bool residual_gradient;  // a gradient reaches h too (dh_out), not only y
};

// The float64 reference from the device inputs: h64 is x + r as stored (rounded to x's dtype) with
// the gradient of the sum, y64 = h64·rsqrt(mean(h64²) + eps)·w.
void check_add_rms_norm(const AddNormCase& c) {
#ifdef MIXLAB_WITH_CUDA
  torch::manual_seed(31 + c.shape.front() + c.shape.back());
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const auto x = (torch::randn(c.shape, cuda) * 2).to(c.x).requires_grad_(true);
  const auto r = torch::randn(c.shape, cuda).to(c.r).requires_grad_(true);
  const auto w = (1 + 0.5 * torch::randn({c.shape.back()}, cuda)).to(c.w).requires_grad_(true);
  ASSERT_TRUE(cuda::add_rms_norm_supported(x, r, w));
  ImplementationLog log;
  poison_allocator();
  const auto [h, y] = add_rms_norm(x, r, w, kEps);
  EXPECT_EQ(log.summary(), "add_rms_norm=kernel");
  EXPECT_EQ(h.scalar_type(), c.x);
  EXPECT_EQ(y.scalar_type(), at::promote_types(c.x, c.w));
  const auto gy = torch::randn(y.sizes(), cuda.dtype(y.scalar_type()));
  const auto gh = torch::randn(h.sizes(), cuda.dtype(h.scalar_type()));
  if (c.residual_gradient) torch::autograd::backward({y, h}, {gy, gh});
  else y.backward(gy);

  auto on_cpu = [](const torch::Tensor& t) { return t.detach().cpu().to(torch::kDouble).requires_grad_(true); };
  const auto x64 = on_cpu(x), r64 = on_cpu(r), w64 = on_cpu(w);
  const auto sum = x64 + r64;
  const auto h64 = sum + (sum.detach().to(c.x).to(torch::kDouble) - sum.detach());
  const auto y64 = h64 * torch::rsqrt(h64.square().mean(-1, true) + kEps) * w64;
  const auto gy64 = gy.cpu().to(torch::kDouble), gh64 = gh.cpu().to(torch::kDouble);
  if (c.residual_gradient) torch::autograd::backward({y64, h64}, {gy64, gh64});
  else y64.backward(gy64);

  SCOPED_TRACE(std::string("x ") + c10::toString(c.x) + ", r " + c10::toString(c.r) + ", w " + c10::toString(c.w) +
               ", shape " + c10::str(c10::IntArrayRef(c.shape)) + (c.residual_gradient ? ", with dh_out" : ""));
  EXPECT_LT(relative_error(h, h64), tolerance(c.x)) << "h";
  EXPECT_LT(relative_error(y, y64), tolerance(y.scalar_type())) << "y";
  EXPECT_LT(relative_error(x.grad(), x64.grad()), tolerance(c.x)) << "dx";
  EXPECT_LT(relative_error(r.grad(), r64.grad()), tolerance(c.r)) << "dr";
  EXPECT_LT(relative_error(w.grad(), w64.grad()), tolerance(c.w)) << "dw";
#endif
}

// Widths: 768 (3 vectors a lane), 64 (8 of 32 lanes), 200 and 1000 (the last vector of some lanes
// absent), 2048 (8 vectors a lane).  Rows: ragged against the block's 8 warps, and enough to loop
// over the grid (16000 rows of 64, 4000 of 768).
TEST(AddRmsNormKernel, MatchesFloat64Reference) {
  MIXLAB_REQUIRE_GPU();
  const std::vector<std::vector<int64_t>> shapes = {{3, 37, 768}, {5, 64}, {4, 1000, 768}, {2, 8000, 64},
                                                    {7, 200},     {3, 1000}, {2, 3, 2048}};
  for (const auto dtype : {torch::kBFloat16, torch::kHalf, torch::kFloat32})
    for (const auto& shape : shapes)
      for (const bool residual_gradient : {false, true})
        check_add_rms_norm({shape, dtype, dtype, dtype, residual_gradient});
}

// The autocast stream (float32 residual, bf16 / fp16 branch, float32 weight; dr in the branch's
// dtype) and a bf16 stream beside a float32 weight (y in float32).
TEST(AddRmsNormKernel, MixedDtypesMatchFloat64Reference) {
  MIXLAB_REQUIRE_GPU();
  for (const auto& shape : std::vector<std::vector<int64_t>>{{3, 37, 768}, {9, 64}})
    for (const bool residual_gradient : {false, true}) {
      check_add_rms_norm({shape, torch::kFloat32, torch::kBFloat16, torch::kFloat32, residual_gradient});
      check_add_rms_norm({shape, torch::kFloat32, torch::kHalf, torch::kFloat32, residual_gradient});
      check_add_rms_norm({shape, torch::kBFloat16, torch::kBFloat16, torch::kFloat32, residual_gradient});
    }
}

// The RMSNorm alone (no residual: the same kernels with r null) against float64 on the CPU:
// y, dx, dw for each dtype, a float32 x beside a bf16 weight's promotion, and the widths above.
void check_rms_norm(const std::vector<int64_t>& shape, torch::ScalarType x_dtype, torch::ScalarType w_dtype) {
#ifdef MIXLAB_WITH_CUDA
  torch::manual_seed(41 + shape.front() + shape.back());
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const auto x = (torch::randn(shape, cuda) * 2).to(x_dtype).requires_grad_(true);
  const auto w = (1 + 0.5 * torch::randn({shape.back()}, cuda)).to(w_dtype).requires_grad_(true);
  ImplementationLog log;
  poison_allocator();
  const auto y = rms_norm(x, w, kEps);
  EXPECT_EQ(log.summary(), "rms_norm=kernel");
  EXPECT_EQ(y.scalar_type(), at::promote_types(x_dtype, w_dtype));
  const auto gy = torch::randn(y.sizes(), cuda.dtype(y.scalar_type()));
  y.backward(gy);
  const auto x64 = x.detach().cpu().to(torch::kDouble).requires_grad_(true);
  const auto w64 = w.detach().cpu().to(torch::kDouble).requires_grad_(true);
  const auto y64 = x64 * torch::rsqrt(x64.square().mean(-1, true) + kEps) * w64;
  y64.backward(gy.cpu().to(torch::kDouble));
  SCOPED_TRACE(std::string("x ") + c10::toString(x_dtype) + ", w " + c10::toString(w_dtype) + ", shape " +
               c10::str(c10::IntArrayRef(shape)));
  EXPECT_LT(relative_error(y, y64), tolerance(y.scalar_type())) << "y";
  EXPECT_LT(relative_error(x.grad(), x64.grad()), tolerance(x_dtype)) << "dx";
  EXPECT_LT(relative_error(w.grad(), w64.grad()), tolerance(w_dtype)) << "dw";
#endif
}

TEST(RmsNormKernel, MatchesFloat64Reference) {
  MIXLAB_REQUIRE_GPU();
  for (const auto dtype : {torch::kBFloat16, torch::kHalf, torch::kFloat32})
    for (const auto& shape : std::vector<std::vector<int64_t>>{{3, 37, 768}, {2, 8000, 64}, {7, 200}, {2, 3, 2048}})
      check_rms_norm(shape, dtype, dtype);
  check_rms_norm({5, 64}, torch::kBFloat16, torch::kFloat32);
  check_rms_norm({5, 64}, torch::kFloat32, torch::kBFloat16);
}

// dw is a two-pass sum in a fixed order: the same bits every run.
TEST(AddRmsNormKernel, WeightGradientIsDeterministic) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const auto x = torch::randn({8, 2048, 768}, cuda), r = torch::randn({8, 2048, 768}, cuda.dtype(torch::kBFloat16));
  const auto gy = torch::randn({8, 2048, 768}, cuda);
  std::vector<torch::Tensor> dw;
  for (int run = 0; run < 3; ++run) {
    const auto w = torch::ones({768}, cuda).requires_grad_(true);
    add_rms_norm(x, r, w, kEps).second.backward(gy);
    dw.push_back(w.grad());
  }
  EXPECT_TRUE(torch::equal(dw[0], dw[1]) && torch::equal(dw[0], dw[2]));
#endif
}

// Under CUDA autocast the kernel writes the dtype the reference path gives (at::rms_norm's, from
// LibTorch 2.8) and the same values.
TEST(AddRmsNormKernel, DtypeUnderAutocastIsTheReferences) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  for (const auto x_dtype : {torch::kFloat32, torch::kBFloat16}) {
    const auto x = torch::randn({6, 768}, cuda.dtype(x_dtype));
    const auto r = torch::randn({6, 768}, cuda.dtype(torch::kBFloat16));
    const auto w = (torch::rand({768}, cuda) + 0.5).to(x_dtype);  // bf16 x, w: bf16 outside autocast
    compat::CudaAutocast autocast(true);
    ImplementationLog log;
    const auto [h, y] = add_rms_norm(x, r, w, kEps);
    EXPECT_EQ(log.summary(), "add_rms_norm=kernel");
    const auto want = compat::rms_norm(x + r, w, kEps);
    EXPECT_EQ(y.scalar_type(), want.scalar_type()) << x_dtype;
    EXPECT_LT(relative_error(y, want), tolerance(y.scalar_type())) << x_dtype;
  }
#endif
}

// What the kernels do not take runs the reference; the binding refuses it.
TEST(AddRmsNormKernel, DispatchRunsTheReferenceForWhatTheKernelDoesNotTake) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const auto x = torch::randn({4, 64}, cuda), w = torch::ones({64}, cuda);
  EXPECT_TRUE(cuda::add_rms_norm_supported(x, x, w));
  const auto odd = torch::randn({4, 36}, cuda), wide = torch::randn({2, 2056}, cuda);
  EXPECT_FALSE(cuda::add_rms_norm_supported(odd, odd, torch::ones({36}, cuda)));      // d not a multiple of 8
  EXPECT_FALSE(cuda::add_rms_norm_supported(wide, wide, torch::ones({2056}, cuda)));  // d over 2048
  EXPECT_FALSE(cuda::add_rms_norm_supported(x.to(torch::kDouble), x.to(torch::kDouble), w.to(torch::kDouble)));
  EXPECT_FALSE(cuda::add_rms_norm_supported(x.to(torch::kBFloat16), x, w));  // x + r promotes past x's dtype
  const auto square = torch::randn({64, 64}, cuda);
  EXPECT_FALSE(cuda::add_rms_norm_supported(square.t(), square, w));  // not contiguous
  const auto flat = torch::randn({4 * 64 + 1}, cuda);
  EXPECT_FALSE(cuda::add_rms_norm_supported(flat.narrow(0, 1, 4 * 64).view({4, 64}), x, w));  // misaligned
  ImplementationLog log;
  const auto [h, y] = add_rms_norm(odd, odd, torch::ones({36}, cuda), kEps);
  EXPECT_EQ(log.summary(), "add_rms_norm=reference");
  EXPECT_TRUE(torch::equal(y, compat::rms_norm(odd + odd, torch::ones({36}, cuda), kEps)));
  try {
    cuda::add_rms_norm(odd, odd, torch::ones({36}, cuda), kEps);
    ADD_FAILURE() << "d = 36 reached the kernel";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what()).find("runs the reference"), std::string::npos) << error.what();
  }
#endif
}

}  // namespace MIXLAB_UNITY_ID
}  // namespace mixlab
