// LibTorch entry of the fused residual add + RMSNorm kernels (add_rms_norm.cu): which inputs they
// take, the autograd Function with its hand-written backward, and the launches.  The reference is
// mixlab::add_rms_norm's composed form (harness/add_rms_norm.cpp), which calls these where
// add_rms_norm_supported passes.
//
// Backward.  With s = rsqrt(mean(h²) + eps) saved per row and g = dy·w:
//   dh = dh_out + s·g − h·s³·mean(g·h),   dx = dr = dh,   dw = Σ_rows dy·h·s
// dh_out, the gradient reaching h along the residual path, is undefined where h is not used again
// (after the last sublayer) and then counts as zero; undefined gradients are not materialised.
// dr is dh itself where r has x's dtype; otherwise the kernel writes it in r's dtype too (the
// autocast case: a float32 residual stream beside a bf16 branch).

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "core/compat.h"
#include "harness/cuda/kernels.h"
#include "harness/cuda/launch.h"

namespace mixlab::cuda {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// The kernels' element type of `dtype`; false for a dtype they are not built for.
bool norm_element_of(torch::ScalarType dtype, detail::NormElement& element) {
  switch (dtype) {
    case torch::kFloat: element = detail::NormElement::f32; return true;
    case torch::kBFloat16: element = detail::NormElement::bf16; return true;
    case torch::kHalf: element = detail::NormElement::fp16; return true;
    default: return false;
  }
}

bool aligned(const torch::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; }

// A gradient as the backward kernel reads it: `dtype`, contiguous, 16-byte aligned (copied only
// where it is not, e.g. an expanded gradient of a sum or a view at an odd offset).
torch::Tensor kernel_operand(const torch::Tensor& t, torch::ScalarType dtype) {
  auto out = t.to(dtype).contiguous();
  return aligned(out) ? out : out.clone();
}

// x: [..., d] as [rows, d]; the elements of h (x's dtype), r, w and y.
detail::AddNormShape add_norm_shape(const torch::Tensor& x, torch::ScalarType r_dtype, torch::ScalarType w_dtype,
                                    torch::ScalarType y_dtype, double eps) {
  detail::AddNormShape s;
  norm_element_of(x.scalar_type(), s.h);
  norm_element_of(r_dtype, s.r);
  norm_element_of(w_dtype, s.w);
  norm_element_of(y_dtype, s.y);
  s.cols = x.size(-1);
  s.rows = x.numel() / s.cols;
  s.eps = static_cast<float>(eps);
  return s;
}

void* current_stream() { return at::cuda::getCurrentCUDAStream().stream(); }

class AddRmsNormFunction : public torch::autograd::Function<AddRmsNormFunction> {
 public:
  // x, r: [..., d]; weight: [d] -> {h = x + r, y = RMSNorm(h)·w}: [..., d] contiguous
  static tensor_list forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& r,
                             const torch::Tensor& weight, double eps) {
    const c10::cuda::CUDAGuard guard(x.device());
    const auto y_dtype = compat::rms_norm_dtype(x, weight);
    const auto s = add_norm_shape(x, r.scalar_type(), weight.scalar_type(), y_dtype, eps);
    auto h = torch::empty(x.sizes(), x.options());
    auto y = torch::empty(x.sizes(), x.options().dtype(y_dtype));
    auto inv_rms = torch::empty({s.rows}, x.options().dtype(torch::kFloat));  // s per row
    detail::add_rms_norm_forward(s, x.data_ptr(), r.data_ptr(), weight.data_ptr(), h.data_ptr(), y.data_ptr(),
                                 inv_rms.data_ptr<float>(), current_stream());
    ctx->save_for_backward({h, inv_rms, weight});
    ctx->saved_data["r_dtype"] = r.scalar_type();
    ctx->saved_data["y_dtype"] = y_dtype;
    ctx->saved_data["eps"] = eps;
    ctx->set_materialize_grads(false);
    return {h, y};
  }

  // dh_out = dL/dh, dy = dL/dy (either undefined: zero) -> dx, dr: [..., d]; dw: [d]
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &h = saved[0], &inv_rms = saved[1], &weight = saved[2];
    const auto r_dtype = ctx->saved_data["r_dtype"].toScalarType();
    const auto y_dtype = ctx->saved_data["y_dtype"].toScalarType();
    const auto dh_out = grads[0].defined() ? kernel_operand(grads[0], h.scalar_type()) : torch::Tensor();
    if (!grads[1].defined())  // y unused: h's gradient passes to both inputs
      return {dh_out, dh_out.defined() ? dh_out.to(r_dtype) : dh_out, torch::Tensor(), torch::Tensor()};
    const c10::cuda::CUDAGuard guard(h.device());
    const auto dy = kernel_operand(grads[1], y_dtype);
    const auto s = add_norm_shape(h, r_dtype, weight.scalar_type(), y_dtype, ctx->saved_data["eps"].toDouble());
    auto dh = torch::empty(h.sizes(), h.options());
    auto dr = r_dtype == h.scalar_type() ? dh : torch::empty(h.sizes(), h.options().dtype(r_dtype));
    torch::Tensor dw, partial;
    if (ctx->needs_input_grad(2)) {
      dw = torch::empty_like(weight);
      partial = torch::empty({detail::add_rms_norm_backward_blocks(s), s.cols}, h.options().dtype(torch::kFloat));
    }
    detail::add_rms_norm_backward(s, h.data_ptr(), inv_rms.data_ptr<float>(), weight.data_ptr(), dy.data_ptr(),
                                  dh_out.defined() ? dh_out.data_ptr() : nullptr, dh.data_ptr(),
                                  dr.is_same(dh) ? nullptr : dr.data_ptr(),
                                  partial.defined() ? partial.data_ptr<float>() : nullptr,
                                  dw.defined() ? dw.data_ptr() : nullptr, current_stream());
    return {dh, dr, dw, torch::Tensor()};
  }
};

// The RMSNorm alone, y = RMSNorm(x)·w: the same kernels with no residual (r null, h not written
// forward; h = x, dh_out null, dr null backward).
class RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
 public:
  // x: [..., d]; weight: [d] -> y: [..., d] contiguous
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight, double eps) {
    const c10::cuda::CUDAGuard guard(x.device());
    const auto y_dtype = compat::rms_norm_dtype(x, weight);
    const auto s = add_norm_shape(x, x.scalar_type(), weight.scalar_type(), y_dtype, eps);
    auto y = torch::empty(x.sizes(), x.options().dtype(y_dtype));
    auto inv_rms = torch::empty({s.rows}, x.options().dtype(torch::kFloat));  // s per row
    detail::add_rms_norm_forward(s, x.data_ptr(), nullptr, weight.data_ptr(), nullptr, y.data_ptr(),
                                 inv_rms.data_ptr<float>(), current_stream());
    ctx->save_for_backward({x, inv_rms, weight});
    ctx->saved_data["y_dtype"] = y_dtype;
    ctx->saved_data["eps"] = eps;
    return y;
  }

  // dy -> dx: [..., d]; dw: [d]
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &inv_rms = saved[1], &weight = saved[2];
    const auto y_dtype = ctx->saved_data["y_dtype"].toScalarType();
    const c10::cuda::CUDAGuard guard(x.device());
    const auto dy = kernel_operand(grads[0], y_dtype);
    const auto s = add_norm_shape(x, x.scalar_type(), weight.scalar_type(), y_dtype, ctx->saved_data["eps"].toDouble());
    auto dx = torch::empty(x.sizes(), x.options());
    torch::Tensor dw, partial;
    if (ctx->needs_input_grad(1)) {
      dw = torch::empty_like(weight);
      partial = torch::empty({detail::add_rms_norm_backward_blocks(s), s.cols}, x.options().dtype(torch::kFloat));
    }
    detail::add_rms_norm_backward(s, x.data_ptr(), inv_rms.data_ptr<float>(), weight.data_ptr(), dy.data_ptr(),
                                  nullptr, dx.data_ptr(), nullptr,
                                  partial.defined() ? partial.data_ptr<float>() : nullptr,
                                  dw.defined() ? dw.data_ptr() : nullptr, current_stream());
    return {dx, dw, torch::Tensor()};
  }
};

}  // namespace

bool add_rms_norm_supported(const torch::Tensor& x, const torch::Tensor& r, const torch::Tensor& weight) {
  detail::NormElement element;
  if (!x.defined() || !r.defined() || !weight.defined() || !x.is_cuda() || x.dim() < 1) return false;
  if (r.device() != x.device() || weight.device() != x.device()) return false;
  const int64_t d = x.size(-1);
  if (r.sizes() != x.sizes() || weight.dim() != 1 || weight.size(0) != d || x.numel() == 0) return false;
  if (d % detail::kAddNormVector != 0 || d > detail::kAddNormMaxCols) return false;
  if (at::promote_types(x.scalar_type(), r.scalar_type()) != x.scalar_type()) return false;  // h in x's dtype
  for (const auto dtype : {x.scalar_type(), r.scalar_type(), weight.scalar_type(), compat::rms_norm_dtype(x, weight)})
    if (!norm_element_of(dtype, element)) return false;
  for (const auto* t : {&x, &r, &weight})
    if (!t->is_contiguous() || !aligned(*t)) return false;
  return true;
}

std::pair<torch::Tensor, torch::Tensor> add_rms_norm(const torch::Tensor& x, const torch::Tensor& r,
                                                     const torch::Tensor& weight, double eps) {
  TORCH_CHECK(add_rms_norm_supported(x, r, weight),
              "harness/cuda/add_rms_norm_binding.cpp: add_rms_norm: the kernels take CUDA x, r [..., d] of one "
              "shape and weight [d], contiguous and 16-byte aligned, d a multiple of 8 up to 2048, bf16 / fp16 / "
              "float32 with x's dtype that of x + r; got x ",
              x.sizes(), " ", x.scalar_type(), ", r ", r.sizes(), " ", r.scalar_type(), ", weight ", weight.sizes(),
              " ", weight.scalar_type(), "; call mixlab::add_rms_norm (harness/add_rms_norm.h), which runs the "
              "reference for these");
  const auto out = AddRmsNormFunction::apply(x, r, weight, eps);
  return {out[0], out[1]};
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  TORCH_CHECK(add_rms_norm_supported(x, x, weight),
              "harness/cuda/add_rms_norm_binding.cpp: rms_norm: the kernels take CUDA x [..., d] and weight [d], "
              "contiguous and 16-byte aligned, d a multiple of 8 up to 2048, bf16 / fp16 / float32; got x ",
              x.sizes(), " ", x.scalar_type(), ", weight ", weight.sizes(), " ", weight.scalar_type(),
              "; call mixlab::rms_norm (harness/add_rms_norm.h), which runs the reference for these");
  return RmsNormFunction::apply(x, weight, eps);
}

}  // namespace mixlab::cuda
