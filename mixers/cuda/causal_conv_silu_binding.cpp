// LibTorch entry of the fused causal depthwise conv + SiLU kernels (causal_conv_silu.cu): which
// inputs they take, the autograd Function with its hand-written backward, and the launches.  The
// reference is mixlab::causal_conv_silu (mixers/causal_depthwise_conv.h), which calls these where
// causal_conv_silu_supported passes.
//
//   u[b, e, t] = SiLU(c),   c[b, e, t] = bias[e] + Σ_i w[e, i] · x[b, t − (K−1−i), e]
//   x: [B, N, E] (channel stride 1), weight [E, 1, K], bias [E] or undefined -> u: [B, E, N]
//
// Backward.  SiLU'(c) = σ(c)·(1 + c·(1 − σ(c))), so dc = g·SiLU'(c); the convolution's adjoint
// gives dx[t] = Σ_i w[e, i]·dc[t + K−1−i], dw[e, i] = Σ_{b,t} dc[t]·x[t − (K−1−i)], dbias = Σ dc.
// Only x, weight and bias are saved; c is recomputed from x.
//
// Dtypes.  x and u share one dtype (bf16, fp16, float32), the one the op computes in: x's dtype,
// which under CUDA autocast must be the autocast dtype (Mamba's x is in_proj's output, already in
// it).  weight and bias are float32 or x's dtype (both the same), read as float32: under autocast
// a float32 weight is used unrounded, where LibTorch's conv1d would round it to bf16 first; dw and
// dbias come back in the weight's dtype.  Other combinations run the reference.

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "core/compat.h"
#include "mixers/cuda/causal_conv_silu_launch.h"
#include "mixers/cuda/kernels.h"

namespace mixlab::cuda {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

bool element_of(torch::ScalarType dtype, detail::ScanElement& element) {
  switch (dtype) {
    case torch::kFloat: element = detail::ScanElement::f32; return true;
    case torch::kBFloat16: element = detail::ScanElement::bf16; return true;
    case torch::kHalf: element = detail::ScanElement::fp16; return true;
    default: return false;
  }
}

// x: [B, N, E], weight: [E, 1, K] -> the launch shape (x's strides as they are).
detail::ConvSiluShape conv_silu_shape(const torch::Tensor& x, const torch::Tensor& weight) {
  detail::ConvSiluShape s;
  element_of(x.scalar_type(), s.element);
  element_of(weight.scalar_type(), s.param);
  s.batch = static_cast<int>(x.size(0));
  s.time = static_cast<int>(x.size(1));
  s.channels = static_cast<int>(x.size(2));
  s.kernel = static_cast<int>(weight.size(2));
  s.x_batch_stride = x.stride(0);
  s.x_time_stride = x.stride(1);
  return s;
}

const void* pointer_or_null(const torch::Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; }
void* mutable_or_null(const torch::Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; }
void* current_stream() { return at::cuda::getCurrentCUDAStream().stream(); }

class CausalConvSiluFunction : public torch::autograd::Function<CausalConvSiluFunction> {
 public:
  // x: [B, N, E] (channel stride 1); weight [E, 1, K]; bias [E] or [0] for none -> u: [B, E, N].
  // "No bias" arrives as an empty tensor, not an undefined one: LibTorch 2.x's Function::apply
  // records the device of every tensor argument and refuses an undefined one.
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias) {
    const c10::cuda::CUDAGuard guard(x.device());
    const auto w = weight.contiguous();
    const auto b = bias.numel() > 0 ? bias.contiguous() : torch::Tensor();
    auto u = torch::empty({x.size(0), x.size(2), x.size(1)}, x.options());
    detail::causal_conv_silu_forward(conv_silu_shape(x, w), x.data_ptr(), w.data_ptr(), pointer_or_null(b),
                                     u.data_ptr(), current_stream());
    ctx->save_for_backward({x, w, b});
    return u;
  }

  // g = dL/du: [B, E, N] -> dx: [B, N, E] contiguous; dweight [E, 1, K]; dbias [E] (undefined without bias)
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &w = saved[1], &b = saved[2];
    const c10::cuda::CUDAGuard guard(x.device());
    const auto g = grads[0].to(x.scalar_type()).contiguous();
    const auto s = conv_silu_shape(x, w);
    auto dx = torch::empty({x.size(0), x.size(1), x.size(2)}, x.options());
    auto dw = torch::empty_like(w);
    auto db = b.defined() ? torch::empty_like(b) : torch::Tensor();
    auto partial = torch::empty({detail::causal_conv_silu_partial_floats(s)}, x.options().dtype(torch::kFloat));
    detail::causal_conv_silu_backward(s, x.data_ptr(), w.data_ptr(), pointer_or_null(b), g.data_ptr(), dx.data_ptr(),
                                      partial.data_ptr<float>(), dw.data_ptr(), mutable_or_null(db), current_stream());
    return {dx, dw, db};
  }
};

// weight [E, 1, K] and bias [E] (or undefined) as the kernels take them beside x: CUDA on x's
// device, one dtype, float32 or x's.
bool parameters_supported(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  const int64_t channels = x.size(2);
  if (!weight.defined() || weight.device() != x.device() || weight.dim() != 3) return false;
  if (weight.size(0) != channels || weight.size(1) != 1) return false;
  if (weight.scalar_type() != torch::kFloat && weight.scalar_type() != x.scalar_type()) return false;
  if (!bias.defined()) return true;
  return bias.device() == x.device() && bias.dim() == 1 && bias.size(0) == channels &&
         bias.scalar_type() == weight.scalar_type();
}

}  // namespace

bool causal_conv_silu_supported(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  detail::ScanElement element;
  if (!x.defined() || !x.is_cuda() || x.dim() != 3 || !element_of(x.scalar_type(), element)) return false;
  if (x.size(2) > 1 && x.stride(2) != 1) return false;
  const auto autocast = compat::cuda_autocast_dtype();
  if (autocast && *autocast != x.scalar_type()) return false;
  if (!parameters_supported(x, weight, bias)) return false;
  if (x.size(0) > INT32_MAX || x.size(1) > INT32_MAX || x.size(2) > INT32_MAX) return false;
  const auto s = conv_silu_shape(x, weight);
  return *detail::causal_conv_silu_unsupported(s) == '\0';
}

torch::Tensor causal_conv_silu(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  TORCH_CHECK(causal_conv_silu_supported(x, weight, bias),
              "mixers/cuda/causal_conv_silu_binding.cpp: causal_conv_silu: the kernels take CUDA x [B, N, E] of "
              "channel stride 1 in bf16, fp16 or float32 (the autocast dtype under autocast), weight [E, 1, K] with K "
              "up to ", detail::kConvSiluMaxKernel, " and bias [E] or none, both float32 or x's dtype; got x ",
              x.sizes(), " ", x.scalar_type(), ", weight ", weight.sizes(), " ", weight.scalar_type(),
              "; call mixlab::causal_conv_silu (mixers/causal_depthwise_conv.h), which runs the reference for these");
  return CausalConvSiluFunction::apply(x, weight, bias.defined() ? bias : torch::empty({0}, weight.options()));
}

}  // namespace mixlab::cuda
