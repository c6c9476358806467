// CUDA kernels (attention/cuda, mixers/cuda) against float64 CPU references written here from the
// equations: forward outputs and every input gradient, for several shapes including ragged N, a
// segment size that does not divide N, and channel counts that do not fill a block.
// Each op is called through its dispatch (mixlab::sliding_window_attention, ...), which runs the
// kernel where the binding supports the input and the mixer's reference otherwise (float32, head
// dim 96, no z); the log of implementations says which ran.
// Without a CUDA build or a GPU every test prints "skipped: no GPU".

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "attention/checkpoint_attention.h"
#include "attention/kv_cache.h"
#include "attention/rope.h"
#include "attention/rope_cache.h"
#include "attention/swa.h"
#include "core/compat.h"
#include "core/implementation.h"
#include "mixers/selective_scan.h"
#include "mixers/swiglu.h"
#include "tests/masked_schemes.h"
#include "tests/gpu_test.h"

#ifdef MIXLAB_WITH_CUDA
#include "attention/cuda/kernels.h"
#include "mixers/cuda/kernels.h"
#include "mixers/cuda/launch.h"
#endif

namespace MIXLAB_UNITY_ID {


// ‖got − want‖ / ‖want‖; where the reference is (close to) zero, e.g. dq when every row sees only
// itself, the error is taken relative to `scale`, a tensor of the magnitude the gradient would have.
double relative_error(const torch::Tensor& got, const torch::Tensor& want, const torch::Tensor& scale = {}) {
  auto g = got.to(torch::kCPU).to(torch::kDouble), w = want.to(torch::kCPU).to(torch::kDouble);
  EXPECT_TRUE(torch::isfinite(g).all().item<bool>()) << "non-finite values (an unwritten output?)";
  double norm = w.norm().item<double>();
  if (scale.defined()) norm = std::max(norm, scale.to(torch::kCPU).to(torch::kDouble).norm().item<double>());
  return (g - w).norm().item<double>() / std::max(norm, 1e-30);
}

// Fill the CUDA caching allocator's free blocks with NaN, so an output element the kernel does not
// write shows up as NaN.
void poison_allocator() {
  auto big = torch::full({16 << 20}, NAN, torch::TensorOptions().device(torch::kCUDA));
  auto small = torch::full({200000}, NAN, torch::TensorOptions().device(torch::kCUDA));
}

// ------------------------------------------------------------------------------ attention

// The dense masks of tests/masked_schemes.h; the reference is testing::masked_attention there.
torch::Tensor window_mask(int64_t n, int64_t window) {
  return mixlab::testing::scheme_mask<mixlab::testing::SlidingWindowScheme>(n, window);
}
torch::Tensor checkpoint_mask(int64_t n, int64_t segment) {
  return mixlab::testing::scheme_mask<mixlab::testing::CheckpointScheme>(n, segment);
}

struct AttentionCase {
  int64_t batch, heads, n, head_dim, param;  // param: window or segment size
  torch::ScalarType dtype;
  // "contiguous": q, k, v, dO [B, H, N, d_h]; "projection": the transposed heads of one
  // [B, N, 3, H, d_h] q/k/v product and dO [B, N, H, d_h] transposed, as multi-head attention passes
  // them (the kernels read them in place); "unaligned": rows d_h + 4 wide, strides no multiple of
  // 16 bytes (the binding copies them to contiguous first).
  std::string layout = "contiguous";
};

// q, k, v [B, H, N, d_h] of the case's layout as views of one leaf tensor (also used to view the
// leaf's gradient the same way).
std::vector<torch::Tensor> attention_views(const AttentionCase& c, const torch::Tensor& leaf) {
  if (c.layout == "projection")  // leaf [B, N, 3, H, d_h]
    return {leaf.select(2, 0).transpose(1, 2), leaf.select(2, 1).transpose(1, 2), leaf.select(2, 2).transpose(1, 2)};
  if (c.layout == "unaligned")  // leaf [3, B, N, H, d_h + 4]
    return {leaf[0].narrow(-1, 0, c.head_dim).transpose(1, 2), leaf[1].narrow(-1, 0, c.head_dim).transpose(1, 2),
            leaf[2].narrow(-1, 0, c.head_dim).transpose(1, 2)};
  return {leaf[0], leaf[1], leaf[2]};  // leaf [3, B, H, N, d_h]
}

torch::Tensor attention_leaf(const AttentionCase& c, const torch::TensorOptions& options) {
  const int64_t b = c.batch, h = c.heads, n = c.n, d = c.head_dim;
  if (c.layout == "projection") return torch::randn({b, n, 3, h, d}, options);
  if (c.layout == "unaligned") return torch::randn({3, b, n, h, d + 4}, options);
  return torch::randn({3, b, h, n, d}, options);
}

// token_major: the output must be laid out [B, N, H, d_h] (the sm_80 kernels write it so; the
// sm90 ones, opt-in, write [B, H, N, d_h]).
template <class Kernel>
void check_attention(const AttentionCase& c, const torch::Tensor& allowed, Kernel kernel, bool token_major = true) {
#ifdef MIXLAB_WITH_CUDA
  torch::manual_seed(1000 + c.n + c.head_dim + c.param);
  auto cuda = torch::TensorOptions().device(torch::kCUDA).dtype(c.dtype);
  auto leaf = attention_leaf(c, cuda).requires_grad_(true);
  const auto qkv = attention_views(c, leaf);
  const auto &q = qkv[0], &k = qkv[1], &v = qkv[2];
  auto dout = c.layout == "projection" ? torch::randn({c.batch, c.n, c.heads, c.head_dim}, cuda).transpose(1, 2)
                                       : torch::randn({c.batch, c.heads, c.n, c.head_dim}, cuda);

  poison_allocator();
  auto out = kernel(q, k, v, c.param);
  out.backward(dout);
  const auto grads = attention_views(c, leaf.grad());

  auto q64 = q.detach().cpu().to(torch::kDouble).requires_grad_(true);
  auto k64 = k.detach().cpu().to(torch::kDouble).requires_grad_(true);
  auto v64 = v.detach().cpu().to(torch::kDouble).requires_grad_(true);
  auto ref = mixlab::testing::masked_attention(q64, k64, v64, allowed);
  ref.backward(dout.cpu().to(torch::kDouble));

  const double tol = 1.5e-2;  // bf16 operands and outputs
  SCOPED_TRACE("N=" + std::to_string(c.n) + " d=" + std::to_string(c.head_dim) + " param=" + std::to_string(c.param) +
               " layout=" + c.layout);
  EXPECT_LT(relative_error(out, ref), tol) << "output";
  if (token_major && c.dtype != torch::kFloat && (c.head_dim == 64 || c.head_dim == 128))  // the kernels' output
    EXPECT_TRUE(out.transpose(1, 2).is_contiguous()) << "the heads' merge after the kernel is not a view";
  EXPECT_LT(relative_error(grads[0], q64.grad(), v64.grad()), 2 * tol) << "dq";
  EXPECT_LT(relative_error(grads[1], k64.grad(), v64.grad()), 2 * tol) << "dk";
  EXPECT_LT(relative_error(grads[2], v64.grad()), 2 * tol) << "dv";
#endif
}

// On a Hopper the attention ops send the schemes MIXLAB_SM90_ATTENTION names to the sm90 kernels
// (attention/cuda/kernels.h), so the sm_80 kernels' tests below ask for "none" (ScopedSm90Choice)
// to test those kernels there too.
#ifdef MIXLAB_WITH_CUDA
using mixlab::cuda::ScopedSm90Choice;
#endif

TEST(CudaKernels, SlidingWindowMatchesFloat64Reference) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  const ScopedSm90Choice sm80_kernels("none");
  const std::vector<AttentionCase> cases = {
      {2, 3, 200, 64, 37, torch::kBFloat16},   {1, 2, 333, 128, 64, torch::kBFloat16},
      {1, 2, 130, 64, 1000, torch::kBFloat16}, {1, 1, 77, 128, 1, torch::kBFloat16},
      {1, 2, 300, 64, 129, torch::kHalf},      {2, 1, 257, 128, 200, torch::kHalf},
      {1, 2, 700, 64, 100, torch::kFloat},     {1, 1, 150, 96, 40, torch::kBFloat16},  // the reference
      {2, 3, 200, 64, 37, torch::kBFloat16, "projection"}, {1, 2, 333, 128, 64, torch::kHalf, "projection"},
      {2, 3, 200, 64, 37, torch::kBFloat16, "unaligned"},
  };
  for (const auto& c : cases)
    check_attention(c, window_mask(c.n, c.param), [](auto& q, auto& k, auto& v, int64_t w) {
      return mixlab::sliding_window_attention(q, k, v, w, 0);
    });
#endif
}

TEST(CudaKernels, CheckpointAttentionMatchesFloat64Reference) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  const ScopedSm90Choice sm80_kernels("none");
  const std::vector<AttentionCase> cases = {
      {2, 2, 203, 64, 10, torch::kBFloat16}, {1, 2, 1030, 128, 7, torch::kBFloat16},
      {1, 1, 9, 64, 10, torch::kBFloat16},   {1, 2, 150, 64, 1, torch::kBFloat16},
      {1, 2, 700, 64, 3, torch::kHalf},      {2, 1, 129, 128, 10, torch::kHalf},
      {1, 2, 1100, 64, 10, torch::kFloat},   {1, 1, 150, 96, 7, torch::kBFloat16},  // the reference
      {2, 2, 203, 64, 10, torch::kBFloat16, "projection"}, {1, 2, 1030, 128, 7, torch::kHalf, "projection"},
      {2, 2, 203, 64, 10, torch::kBFloat16, "unaligned"},
  };
  for (const auto& c : cases)
    check_attention(c, checkpoint_mask(c.n, c.param), [](auto& q, auto& k, auto& v, int64_t s) {
      return mixlab::checkpoint_attention(q, k, v, s, 0);
    });
#endif
}

// ------------------------------------------------------------------------------ selective scan

// Δ = softplus(δ + b);  h_t = exp(Δ_t A) h_{t-1} + Δ_t u_t B_t;  y_t = <h_t, C_t> + D u_t;
// out = y ⊙ SiLU(z).  Loop over time in float64, each step vectorised over [batch, E, n].
// `final_state`, when given, receives h after the last step: [batch, E, n].
torch::Tensor scan_reference(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                             const torch::Tensor& B, const torch::Tensor& C, const torch::Tensor& D,
                             const torch::Tensor& z, const torch::Tensor& bias,
                             torch::Tensor* final_state = nullptr) {
  auto dt = torch::softplus(delta + (bias.defined() ? bias.view({1, -1, 1}) : torch::zeros_like(delta)));
  auto h = torch::zeros({u.size(0), u.size(1), A.size(1)}, u.options());
  std::vector<torch::Tensor> ys;
  for (int64_t t = 0; t < u.size(2); ++t) {
    auto dt_t = dt.select(2, t).unsqueeze(-1);
    h = torch::exp(dt_t * A) * h + dt_t * u.select(2, t).unsqueeze(-1) * B.select(2, t).unsqueeze(1);
    ys.push_back((h * C.select(2, t).unsqueeze(1)).sum(-1) + D.view({1, -1}) * u.select(2, t));
  }
  if (final_state) *final_state = h;
  auto y = torch::stack(ys, 2);
  return y * z * torch::sigmoid(z);
}

void check_scan(int64_t batch, int64_t channels, int64_t n, torch::ScalarType dtype, bool with_bias, double tol) {
#ifdef MIXLAB_WITH_CUDA
  torch::manual_seed(7 + n + channels);
  auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const int64_t states = 16;
  auto u = torch::randn({batch, channels, n}, cuda.dtype(dtype)).requires_grad_(true);
  auto delta = (torch::randn({batch, channels, n}, cuda) * 0.5 - 1.0).to(dtype).requires_grad_(true);
  auto A = (-torch::exp(torch::randn({channels, states}, cuda) * 0.5)).requires_grad_(true);
  auto B = torch::randn({batch, states, n}, cuda.dtype(dtype)).requires_grad_(true);
  auto C = torch::randn({batch, states, n}, cuda.dtype(dtype)).requires_grad_(true);
  auto D = torch::randn({channels}, cuda).requires_grad_(true);
  auto z = torch::randn({batch, channels, n}, cuda.dtype(dtype)).requires_grad_(true);
  auto bias = with_bias ? (torch::randn({channels}, cuda) * 0.3).requires_grad_(true) : torch::Tensor();
  auto dout = torch::randn({batch, channels, n}, cuda.dtype(dtype));

  poison_allocator();
  auto out = mixlab::selective_scan(u, delta, A, B, C, D, z, bias);
  out.backward(dout);

  auto cpu64 = [](const torch::Tensor& t) {
    return t.defined() ? t.detach().cpu().to(torch::kDouble).requires_grad_(true) : torch::Tensor();
  };
  auto u64 = cpu64(u), d64 = cpu64(delta), A64 = cpu64(A), B64 = cpu64(B), C64 = cpu64(C), D64 = cpu64(D),
       z64 = cpu64(z), b64 = cpu64(bias);
  auto ref = scan_reference(u64, d64, A64, B64, C64, D64, z64, b64);
  ref.backward(dout.cpu().to(torch::kDouble));

  SCOPED_TRACE("batch=" + std::to_string(batch) + " E=" + std::to_string(channels) + " N=" + std::to_string(n));
  EXPECT_LT(relative_error(out, ref), tol) << "out";
  EXPECT_LT(relative_error(u.grad(), u64.grad()), tol) << "du";
  EXPECT_LT(relative_error(delta.grad(), d64.grad()), tol) << "ddelta";
  EXPECT_LT(relative_error(A.grad(), A64.grad()), tol) << "dA";
  EXPECT_LT(relative_error(B.grad(), B64.grad()), tol) << "dB";
  EXPECT_LT(relative_error(C.grad(), C64.grad()), tol) << "dC";
  EXPECT_LT(relative_error(D.grad(), D64.grad()), tol) << "dD";
  EXPECT_LT(relative_error(z.grad(), z64.grad()), tol) << "dz";
  if (with_bias) EXPECT_LT(relative_error(bias.grad(), b64.grad()), tol) << "ddelta_bias";
#endif
}

// MIXLAB_SM90_ATTENTION on a Hopper picks which schemes run the sm90 kernels
// (attention/cuda/sm90/autograd.cpp; unset: checkpoint only) for bf16 at head dim 64 or 128, and the sm_80
// ones run the rest: both against the float64 reference, forward and gradients, and the log says
// which ran.  A value that is not a choice is an error naming the valid ones.
TEST(CudaKernels, Sm90DispatchMatchesFloat64ReferenceForEachChoice) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  if (!mixlab::cuda::sm90_kernels_available()) GTEST_SKIP() << "skipped: not a Hopper, or not built for sm_90a";
  struct Setting {
    const char* value;
    bool window, checkpoint;  // the schemes it sends to the sm90 kernels
  };
  const std::vector<Setting> settings = {
      {"1", true, true}, {nullptr, false, true}, {"window", true, false}, {"none", false, false}};
  const std::vector<std::pair<AttentionCase, bool>> cases = {  // (case, the sm90 kernels take it)
      {{2, 3, 200, 64, 37, torch::kBFloat16}, true}, {{1, 2, 1030, 64, 1000, torch::kBFloat16, "projection"}, true},
      {{1, 2, 300, 64, 129, torch::kHalf}, false},   {{1, 2, 333, 128, 64, torch::kBFloat16}, true},
  };
  for (const auto& setting : settings) {
    const ScopedSm90Choice chosen(setting.value);
    for (const auto& [c, takes] : cases) {
      for (const bool window : {true, false}) {
        const bool sm90 = takes && (window ? setting.window : setting.checkpoint);
        mixlab::ImplementationLog log;
        const auto allowed = window ? window_mask(c.n, c.param) : checkpoint_mask(c.n, c.param % 20 + 1);
        check_attention(c, allowed, [&](auto& q, auto& k, auto& v, int64_t p) {
          return window ? mixlab::sliding_window_attention(q, k, v, p, 0)
                        : mixlab::checkpoint_attention(q, k, v, p % 20 + 1, 0);
        }, /*token_major=*/!sm90);
        EXPECT_EQ(log.summary().find("sm90_attention=kernel") != std::string::npos, sm90)
            << log.summary() << " (MIXLAB_SM90_ATTENTION " << (setting.value ? setting.value : "unset") << ", N "
            << c.n << ", d " << c.head_dim << ", window " << window << ")";
      }
    }
  }
  const ScopedSm90Choice bogus("yes");
  const auto q = torch::randn({1, 1, 8, 64}, torch::TensorOptions().device(torch::kCUDA).dtype(torch::kBFloat16));
  try {
    mixlab::checkpoint_attention(q, q, q, 4, 0);
    ADD_FAILURE() << "MIXLAB_SM90_ATTENTION=yes was taken";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("valid: unset"), std::string::npos) << e.what();
  }
#endif
}

TEST(CudaKernels, SelectiveScanMatchesFloat64Reference) {
  MIXLAB_REQUIRE_GPU();
  check_scan(2, 40, 150, torch::kFloat, true, 1e-4);
  check_scan(1, 64, 64, torch::kFloat, false, 1e-4);
  check_scan(2, 33, 257, torch::kBFloat16, true, 1e-2);
  check_scan(1, 96, 31, torch::kHalf, true, 5e-3);
}

// The edges of the kernels' tiling: N shorter than one staged chunk (the forward's 64 steps, the
// backward's 32) and than one 16-step save block, N at and one past them, N not a multiple of
// either, channels that fill no 32-channel block or one and a bit, batch 1.  (1, 70, 129) is cut into 2 time slices whose last chunk holds
// one step: the backward once read states past the last saved one there (NaN dA and db_δ).
TEST(CudaKernels, SelectiveScanChunkEdgesMatchFloat64Reference) {
  MIXLAB_REQUIRE_GPU();
  for (const int64_t n : {1, 10, 16, 17, 32, 33, 65, 100})
    check_scan(2, 24, n, torch::kFloat, n % 2 == 0, 1e-4);
  check_scan(1, 70, 129, torch::kFloat, true, 1e-4);
  check_scan(3, 130, 48, torch::kFloat, true, 1e-4);
  check_scan(1, 8, 300, torch::kBFloat16, true, 1e-2);
  check_scan(2, 64, 1000, torch::kBFloat16, false, 1e-2);
}

// Few sequences x channels: the kernels cut time into slices scanned by separate blocks and carry
// the state (forward) and its adjoint (backward) across them (mixers/cuda/selective_scan.cu).  The
// shapes are chosen so that they do (asserted), with a last slice shorter than the others.
TEST(CudaKernels, SelectiveScanTimeSlicesMatchFloat64Reference) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  for (const auto& [batch, channels, n] : std::vector<std::array<int, 3>>{{1, 32, 2100}, {2, 40, 1500}}) {
    mixlab::cuda::detail::ScanShape shape;
    shape.batch = batch, shape.channels = channels, shape.n = n, shape.states = 16;
    const int splits = mixlab::cuda::detail::selective_scan_time_splits(shape);
    EXPECT_GT(splits, 1) << "batch " << batch << " E " << channels << " N " << n;
    EXPECT_NE(n % mixlab::cuda::detail::kScanChunk, 0)
        << "N a multiple of the chunk: the last slice would be a full one";
  }
  check_scan(1, 32, 2100, torch::kFloat, true, 1e-4);
  check_scan(2, 40, 1500, torch::kBFloat16, true, 1e-2);
  check_scan(1, 48, 1024, torch::kHalf, false, 5e-3);
#endif
}

// A prefill's pair without gradients: the kernel's output and the state after the last step (its
// last saved state) against the float64 loop, at lengths inside, at and past the 16-step save
// stride and the 64-step chunk.
TEST(CudaKernels, SelectiveScanFinalStateIsTheStateAfterTheLastStep) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const int64_t batch = 2, channels = 40, states = 16;
  for (const auto dtype : {torch::kFloat, torch::kBFloat16})
    for (const int64_t n : {1, 15, 16, 17, 64, 100, 1000}) {
      torch::manual_seed(3 + n);
      const auto u = torch::randn({batch, channels, n}, cuda.dtype(dtype));
      const auto delta = (torch::randn({batch, channels, n}, cuda) * 0.5 - 1.0).to(dtype);
      const auto A = -torch::exp(torch::randn({channels, states}, cuda) * 0.5);
      const auto B = torch::randn({batch, states, n}, cuda.dtype(dtype));
      const auto C = torch::randn({batch, states, n}, cuda.dtype(dtype));
      const auto D = torch::randn({channels}, cuda), bias = torch::randn({channels}, cuda) * 0.3;
      const auto z = torch::randn({batch, channels, n}, cuda.dtype(dtype));
      torch::NoGradGuard no_grad;
      mixlab::ImplementationLog log;
      const auto [out, h] = mixlab::selective_scan_with_final_state(u, delta, A, B, C, D, z, bias);
      EXPECT_EQ(log.summary(), "selective_scan=kernel");
      auto d64 = [](const torch::Tensor& t) { return t.cpu().to(torch::kDouble); };
      torch::Tensor h_ref;
      const auto ref = scan_reference(d64(u), d64(delta), d64(A), d64(B), d64(C), d64(D), d64(z), d64(bias), &h_ref);
      SCOPED_TRACE("N=" + std::to_string(n) + " " + std::string(c10::toString(dtype)));
      const double tol = dtype == torch::kFloat ? 1e-4 : 1e-2;
      EXPECT_EQ(h.sizes(), torch::IntArrayRef({batch, channels, states}));
      EXPECT_EQ(h.scalar_type(), torch::kFloat);
      EXPECT_LT(relative_error(out, ref), tol) << "out";
      EXPECT_LT(relative_error(h, h_ref), tol) << "final state";
    }
#endif
}

// With gradients wanted the pair is the differentiable composition (selective_scan and the closed
// form): the final state carries a gradient back to u.
TEST(CudaKernels, SelectiveScanFinalStateWithGradientsIsDifferentiable) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const auto u = torch::randn({1, 8, 20}, cuda).requires_grad_(true);
  const auto delta = torch::randn({1, 8, 20}, cuda) * 0.5 - 1.0, z = torch::randn({1, 8, 20}, cuda);
  const auto A = -torch::exp(torch::randn({8, 16}, cuda)), B = torch::randn({1, 16, 20}, cuda);
  const auto [out, h] = mixlab::selective_scan_with_final_state(u, delta, A, B, torch::randn({1, 16, 20}, cuda),
                                                                torch::randn({8}, cuda), z, torch::Tensor());
  h.sum().backward();
  ASSERT_TRUE(u.grad().defined());
  EXPECT_GT(u.grad().abs().sum().item<double>(), 0.0);
#endif
}

// ------------------------------------------------------------------------------ RoPE

// x [B, H, N, d_h] as a layout of `leaf` (a tensor of its own, so that its gradient is kept):
// "transposed" [B, N, H, d_h] viewed as [B, H, N, d_h] (as multi-head attention splits its heads),
// "sliced" the same with the rows d_h + 16 wide (not dense), "contiguous" [B, H, N, d_h].
torch::Tensor rope_layout(const torch::Tensor& leaf, const std::string& layout, int64_t head_dim) {
  if (layout == "contiguous") return leaf;
  if (layout == "sliced") return leaf.narrow(-1, 0, head_dim).transpose(1, 2);
  return leaf.transpose(1, 2);
}

struct RopeCase {
  torch::ScalarType x_dtype, table_dtype;
  int64_t head_dim;
  std::string layout;
  bool random_tables = false;  // cos, sin not RoPE's: the backward must be the general transpose
  bool autocast = false;       // under CUDA autocast (bf16): y in bf16
};

// y = apply_rope(x, cos, sin) through the dispatch on CUDA against the same equation in float64 on
// the CPU (apply_rope's reference, fed the same tables), forward and dL/dx.
void check_rope(const RopeCase& c) {
#ifdef MIXLAB_WITH_CUDA
  constexpr int64_t kBatch = 2, kHeads = 3, kN = 77;
  torch::manual_seed(11 + c.head_dim);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const int64_t width = c.layout == "sliced" ? c.head_dim + 16 : c.head_dim;
  auto leaf = (c.layout == "contiguous" ? torch::randn({kBatch, kHeads, kN, width}, cuda)
                                        : torch::randn({kBatch, kN, kHeads, width}, cuda))
                  .to(c.x_dtype).requires_grad_(true);
  const auto x = rope_layout(leaf, c.layout, c.head_dim);
  auto [cos, sin] = mixlab::rope_tables_cached(kN, c.head_dim, 1e4, cuda.dtype(c.table_dtype));
  if (c.random_tables) {
    cos = torch::randn({kN, c.head_dim}, cuda.dtype(c.table_dtype));
    sin = torch::randn({kN, c.head_dim}, cuda.dtype(c.table_dtype));
  }
  ASSERT_TRUE(mixlab::cuda::rope_supported(x, cos, sin));
  mixlab::ImplementationLog log;
  poison_allocator();
  torch::Tensor y;
  {
    mixlab::compat::CudaAutocast autocast(c.autocast);
    ASSERT_TRUE(mixlab::cuda::rope_supported(x, cos, sin));
    y = mixlab::apply_rope(x, cos, sin);
  }
  EXPECT_EQ(log.summary(), "apply_rope=kernel");
  EXPECT_EQ(y.scalar_type(), c.autocast ? torch::kBFloat16 : at::promote_types(c.x_dtype, c.table_dtype));
  if (c.layout != "sliced") {
    EXPECT_EQ(y.strides(), x.strides()) << "y keeps x's layout";
  }
  const auto dy = torch::randn(y.sizes(), cuda.dtype(y.scalar_type()));
  y.backward(dy);

  auto leaf64 = leaf.detach().cpu().to(torch::kDouble).requires_grad_(true);
  const auto want = mixlab::apply_rope(rope_layout(leaf64, c.layout, c.head_dim), cos.cpu().to(torch::kDouble),
                                       sin.cpu().to(torch::kDouble));
  want.backward(dy.cpu().to(torch::kDouble));
  const auto out_dtype = y.scalar_type();
  const double tol = out_dtype == torch::kFloat32 ? 1e-6 : out_dtype == torch::kHalf ? 2e-3 : 1e-2;
  const double grad_tol = c.x_dtype == torch::kFloat32 ? 1e-6 : c.x_dtype == torch::kHalf ? 2e-3 : 1e-2;
  SCOPED_TRACE(std::string(c10::toString(c.x_dtype)) + " x, " + c10::toString(c.table_dtype) + " tables, d_h " +
               std::to_string(c.head_dim) + ", " + c.layout + (c.random_tables ? ", random tables" : ""));
  EXPECT_LT(relative_error(y, want), tol) << "y";
  EXPECT_LT(relative_error(leaf.grad(), leaf64.grad()), grad_tol) << "dx";
  if (out_dtype == torch::kFloat32 || c.autocast) {
    // float32 arithmetic in the composed form's order: bit for bit, and under autocast that float32
    // result rounded once to bf16 (what the attention after RoPE would cast it to)
    const int64_t half = c.head_dim / 2;
    const auto xd = x.detach();
    const auto composed = (xd * cos + torch::cat({-xd.narrow(-1, half, half), xd.narrow(-1, 0, half)}, -1) * sin)
                              .to(out_dtype);
    EXPECT_TRUE(torch::equal(y.detach(), composed))
        << "differs from LibTorch's float32 result by "
        << (y.detach().to(torch::kFloat32) - composed.to(torch::kFloat32)).abs().max().item<double>();
  }
#endif
}

// The fused RoPE kernel (attention/cuda/rope.cu) through apply_rope: bf16, fp16 and float32 with
// tables of x's dtype, bf16 / fp16 x beside float32 tables (a float32 result, a bf16 / fp16 dx; under
// autocast a bf16 result equal to the float32 one rounded once), head dims 64 and 128, x transposed from the projection layout, sliced (not dense) and
// contiguous, and random tables (the backward as the general transpose, not only R(−θ)).
TEST(CudaKernels, RopeMatchesFloat64Reference) {
  MIXLAB_REQUIRE_GPU();
  for (const auto dtype : {torch::kBFloat16, torch::kHalf, torch::kFloat32})
    for (const int64_t head_dim : {64, 128})
      for (const std::string layout : {"transposed", "sliced", "contiguous"})
        check_rope({dtype, dtype, head_dim, layout});
  check_rope({torch::kBFloat16, torch::kFloat32, 64, "transposed"});
  check_rope({torch::kHalf, torch::kFloat32, 128, "transposed"});
  check_rope({torch::kBFloat16, torch::kFloat32, 64, "transposed", false, true});   // training: autocast
  check_rope({torch::kBFloat16, torch::kFloat32, 128, "transposed", false, true});
  check_rope({torch::kFloat32, torch::kFloat32, 64, "transposed", true});
  check_rope({torch::kBFloat16, torch::kBFloat16, 128, "sliced", true});
  check_rope({torch::kFloat32, torch::kFloat32, 6, "contiguous"});  // d_h/2 = 3: one pair per thread
}

// What the kernel does not take runs the reference (float64, tables asking for a gradient, tables
// of another shape), and the binding refuses it, naming the dispatch.
TEST(CudaKernels, RopeDispatchRunsTheReferenceForWhatTheKernelDoesNotTake) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const auto x64 = torch::randn({1, 2, 9, 8}, cuda.dtype(torch::kDouble));
  const auto [cos64, sin64] = mixlab::rope_tables_cached(9, 8, 1e4, x64.options());
  const auto x = x64.to(torch::kFloat32);
  const auto cos = cos64.to(torch::kFloat32).requires_grad_(true), sin = sin64.to(torch::kFloat32);
  EXPECT_FALSE(mixlab::cuda::rope_supported(x64, cos64, sin64));
  EXPECT_FALSE(mixlab::cuda::rope_supported(x, cos, sin));
  EXPECT_FALSE(mixlab::cuda::rope_supported(x, sin.narrow(0, 0, 5), sin.narrow(0, 0, 5)));
  mixlab::ImplementationLog log;
  mixlab::apply_rope(x64, cos64, sin64);
  mixlab::apply_rope(x, cos, sin);
  EXPECT_EQ(log.summary(), "apply_rope=reference");
  try {
    mixlab::cuda::apply_rope(x64, cos64, sin64);
    ADD_FAILURE() << "float64 reached the kernel";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what()).find("runs the reference"), std::string::npos) << error.what();
  }
#endif
}

// ------------------------------------------------------------------------------ SwiGLU

// out = SiLU(a)·b through mixlab::swiglu on CUDA against float64 on the CPU, forward and both input
// gradients; a spread wide (|a| up to ~12) so that σ saturates.  `rows_of_wider` takes a and b as the
// two halves of one [rows, 2·hidden] product (the static decode step's layout).
void check_swiglu(const std::vector<int64_t>& shape, torch::ScalarType dtype, bool rows_of_wider) {
#ifdef MIXLAB_WITH_CUDA
  torch::manual_seed(21 + shape.back());
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  torch::Tensor a_leaf, b_leaf, a, b;
  if (rows_of_wider) {
    auto wide_shape = shape;
    wide_shape.back() *= 2;
    a_leaf = (torch::randn(wide_shape, cuda) * 4).to(dtype).requires_grad_(true);
    b_leaf = a_leaf;
    a = a_leaf.narrow(-1, 0, shape.back());
    b = a_leaf.narrow(-1, shape.back(), shape.back());
  } else {
    a_leaf = a = (torch::randn(shape, cuda) * 4).to(dtype).requires_grad_(true);
    b_leaf = b = torch::randn(shape, cuda).to(dtype).requires_grad_(true);
  }
  ASSERT_TRUE(mixlab::cuda::swiglu_supported(a, b));
  mixlab::ImplementationLog log;
  poison_allocator();
  const auto out = mixlab::swiglu(a, b);
  EXPECT_EQ(log.summary(), "swiglu=kernel");
  EXPECT_EQ(out.scalar_type(), dtype);
  const auto g = torch::randn(out.sizes(), cuda.dtype(dtype));
  out.backward(g);

  const auto a64 = a.detach().cpu().to(torch::kDouble).requires_grad_(true);
  const auto b64 = b.detach().cpu().to(torch::kDouble).requires_grad_(true);
  const auto want = torch::silu(a64) * b64;
  want.backward(g.cpu().to(torch::kDouble));
  const double tol = dtype == torch::kFloat32 ? 1e-5 : dtype == torch::kHalf ? 2e-3 : 1e-2;
  SCOPED_TRACE(std::string(c10::toString(dtype)) + " hidden " + std::to_string(shape.back()) +
               (rows_of_wider ? ", halves of one product" : ""));
  EXPECT_LT(relative_error(out, want), tol) << "out";
  if (rows_of_wider) {
    const auto grad = a_leaf.grad();
    EXPECT_LT(relative_error(grad.narrow(-1, 0, shape.back()), a64.grad()), tol) << "da";
    EXPECT_LT(relative_error(grad.narrow(-1, shape.back(), shape.back()), b64.grad()), tol) << "db";
  } else {
    EXPECT_LT(relative_error(a_leaf.grad(), a64.grad()), tol) << "da";
    EXPECT_LT(relative_error(b_leaf.grad(), b64.grad()), tol) << "db";
  }
#endif
}

// The fused SwiGLU kernels (mixers/cuda/swiglu.cu): bf16, fp16, float32; a hidden width of 16-byte
// vectors (344) and one that is not (100: bf16 / fp16 one column per thread), a ragged row count,
// and a and b as the halves of one [B, 2·hidden] product (rows strided).
TEST(CudaKernels, SwigluMatchesFloat64Reference) {
  MIXLAB_REQUIRE_GPU();
  for (const auto dtype : {torch::kBFloat16, torch::kHalf, torch::kFloat32}) {
    check_swiglu({2, 37, 344}, dtype, false);
    check_swiglu({3, 5, 100}, dtype, false);
    check_swiglu({7, 344}, dtype, true);
    check_swiglu({1, 1, 52}, dtype, true);
  }
}

// Mixed dtypes and float64 run the reference; the binding refuses them.
TEST(CudaKernels, SwigluDispatchRunsTheReferenceForWhatTheKernelDoesNotTake) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const auto a = torch::randn({4, 24}, cuda), b = torch::randn({4, 24}, cuda.dtype(torch::kBFloat16));
  EXPECT_FALSE(mixlab::cuda::swiglu_supported(a, b));
  EXPECT_FALSE(mixlab::cuda::swiglu_supported(a.to(torch::kDouble), a.to(torch::kDouble)));
  EXPECT_FALSE(mixlab::cuda::swiglu_supported(a.t(), a.t()));  // columns not of unit stride
  mixlab::ImplementationLog log;
  const auto out = mixlab::swiglu(a, b);
  EXPECT_EQ(out.scalar_type(), torch::kFloat32);
  EXPECT_EQ(log.summary(), "swiglu=reference");
  try {
    mixlab::cuda::swiglu(a, b);
    ADD_FAILURE() << "mixed dtypes reached the kernel";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what()).find("runs the reference"), std::string::npos) << error.what();
  }
#endif
}

// The dispatch: which implementation runs for which input, and the dtype rule under autocast.
// ------------------------------------------------------------------------------ slot attention

// One decode step over a static cache (attend_to_prefix, attention/cuda/slot_attention.h) against
// the float64 softmax over the slots attended to, written here:
//   o = Σ_{j < count, j ≤ ⌊t/divisor⌋} softmax_j(q·k_j / √d_h) v_j
// for bf16, fp16 and float32 caches of 700 slots, head dims 64 and 128, counts from 1 to the
// whole cache (one split and many), positions that see one slot, half of them and all of them,
// divisors 1 (attention, swa) and 10 (SCOUT's checkpoints).  Every slot past the last one
// attended to holds NaN, so reading one shows.  Through the dispatch the log says the kernel ran.
TEST(CudaKernels, SlotAttentionMatchesFloat64Reference) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  constexpr int64_t kBatch = 3, kHeads = 2, kSlots = 700;
  for (const auto dtype : {torch::kBFloat16, torch::kHalf, torch::kFloat32}) {
    for (const int64_t head_dim : {64, 128}) {
      for (const int64_t count : {1, 5, 300, 700}) {
        for (const int64_t divisor : {1, 10}) {
          for (const int64_t last : {int64_t{0}, count / 2, count + 3}) {  // the last slot attended to, before clamping
            const int64_t seen = std::min(count, last + 1);
            const int64_t t = last * divisor + divisor - 1;  // any t with ⌊t/divisor⌋ = last
            torch::manual_seed(count + head_dim + last);
            const auto cuda = torch::TensorOptions().device(torch::kCUDA).dtype(dtype);
            auto q = torch::randn({kBatch, kHeads, 1, head_dim}, cuda);
            auto keys = torch::randn({kBatch, kHeads, kSlots, head_dim}, cuda);
            auto values = torch::randn({kBatch, kHeads, kSlots, head_dim}, cuda);
            const auto k64 = keys.narrow(2, 0, seen).cpu().to(torch::kDouble);
            const auto v64 = values.narrow(2, 0, seen).cpu().to(torch::kDouble);
            const auto q64 = q.cpu().to(torch::kDouble);
            const auto weights =
                torch::softmax(torch::matmul(q64, k64.transpose(-2, -1)) / std::sqrt(double(head_dim)), -1);
            const auto want = torch::matmul(weights, v64);  // [B, H, 1, d_h]
            if (seen < kSlots) {  // what the step must not read
              keys.narrow(2, seen, kSlots - seen).fill_(NAN);
              values.narrow(2, seen, kSlots - seen).fill_(NAN);
            }
            torch::NoGradGuard no_grad;
            const auto position = torch::full({1}, t, torch::TensorOptions().dtype(torch::kLong).device(torch::kCUDA));
            ASSERT_TRUE(mixlab::cuda::slot_attention_supported(q, keys, values, count, position));
            mixlab::ImplementationLog log;
            poison_allocator();
            const auto got = mixlab::attend_to_prefix(q, keys, values, count, position, divisor);
            EXPECT_EQ(log.summary(), "attend_to_prefix=kernel");
            const double tol = dtype == torch::kFloat32 ? 1e-5 : 1.5e-2;
            EXPECT_LT(relative_error(got, want), tol)
                << "dtype " << dtype << " d " << head_dim << " count " << count << " t " << t << " divisor " << divisor;
          }
        }
      }
    }
  }
#endif
}

// Under CUDA autocast q and k come out of RoPE in float32 while v is bf16 (the bug that stopped
// every SWA and SCOUT model from training on CUDA): the op casts all three to the autocast dtype,
// as autocast does for a custom op, and runs the kernel.
TEST(CudaKernels, DispatchRunsTheKernelWhereSupportedAndTheReferenceOtherwise) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  torch::manual_seed(5);
  auto cuda = torch::TensorOptions().device(torch::kCUDA);
  auto q = torch::randn({1, 2, 100, 64}, cuda), k = torch::randn({1, 2, 100, 64}, cuda);
  auto v = torch::randn({1, 2, 100, 64}, cuda).to(torch::kBFloat16);
  auto ref = mixlab::testing::masked_attention(q.cpu().to(torch::kDouble), k.cpu().to(torch::kDouble),
                                               v.cpu().to(torch::kDouble), window_mask(100, 17));
  {
    mixlab::ImplementationLog log;
    mixlab::compat::CudaAutocast autocast(true);
    auto out = mixlab::sliding_window_attention(q, k, v, 17, 0);
    EXPECT_EQ(out.scalar_type(), torch::kBFloat16);
    EXPECT_LT(relative_error(out, ref), 1.5e-2);
    EXPECT_EQ(log.summary(), "sliding_window_attention=kernel");
  }
  {  // no autocast: float32 and bf16 promote to float32, which the kernels do not take
    mixlab::ImplementationLog log;
    auto out = mixlab::sliding_window_attention(q, k, v, 17, 0);
    EXPECT_EQ(out.scalar_type(), torch::kFloat);
    EXPECT_LT(relative_error(out, ref), 1e-2);  // v was rounded to bf16
    EXPECT_EQ(log.summary(), "sliding_window_attention=reference");
  }
  {  // the binding refuses what it does not support, naming the dispatch to call instead
    auto q96 = torch::randn({1, 1, 8, 96}, cuda.dtype(torch::kBFloat16));
    EXPECT_FALSE(mixlab::cuda::checkpoint_supported(q96, q96, q96));
    try {
      mixlab::cuda::checkpoint_attention(q96, q96, q96, 4);
      ADD_FAILURE() << "an unsupported head dim reached the kernel";
    } catch (const c10::Error& error) {
      EXPECT_NE(std::string(error.what()).find("runs the reference"), std::string::npos) << error.what();
    }
  }
#endif
}

}  // namespace
