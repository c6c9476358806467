// LibTorch entry of the SwiGLU kernels (swiglu.cu): which inputs they take, the autograd Function
// with its hand-written backward, and the launches.  The reference is mixlab::swiglu's composed
// form (mixers/swiglu.h), which calls these where swiglu_supported passes.
//
// Backward.  out = a·σ(a)·b, σ' = σ(1 − σ), so
//   ∂out/∂a = b·(σ(a) + a·σ(a)(1 − σ(a))) = b·σ(a)·(1 + a·(1 − σ(a))),
//   ∂out/∂b = a·σ(a) = SiLU(a),
// and da = g·∂out/∂a, db = g·∂out/∂b: one kernel reads a, b, g and writes both.  a and b are saved
// (the composed form saves a, SiLU(a) and b).

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "core/cuda/kernels.h"
#include "mixers/cuda/kernels.h"
#include "mixers/cuda/launch.h"

namespace mixlab::cuda {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// The kernels' element type of `dtype`; false for a dtype they are not built for.
bool swiglu_element_of(torch::ScalarType dtype, detail::ScanElement& element) {
  switch (dtype) {
    case torch::kFloat: element = detail::ScanElement::f32; return true;
    case torch::kBFloat16: element = detail::ScanElement::bf16; return true;
    case torch::kHalf: element = detail::ScanElement::fp16; return true;
    default: return false;
  }
}

// t: [..., cols] viewed as [rows, cols] with unit column stride: the row stride, the stride of the
// innermost leading dimension of size > 1, where every outer one of size > 1 follows it densely
// (contiguous tensors, and a narrow of the last dimension such as the gate half of [B, 2·hidden]);
// -1 where no single row stride describes t.
int64_t swiglu_row_stride(const torch::Tensor& t) {
  const int64_t cols = t.size(-1);
  if (t.dim() < 1 || (cols > 1 && t.stride(-1) != 1)) return -1;
  int64_t row_stride = -1, expected = -1;
  for (int64_t d = t.dim() - 2; d >= 0; --d) {
    if (t.size(d) == 1) continue;
    if (row_stride < 0) row_stride = expected = t.stride(d);
    else if (t.stride(d) != expected) return -1;
    expected *= t.size(d);
  }
  return row_stride < 0 ? cols : row_stride;
}

// a, b: [..., cols] -> the launch shape of [rows, cols] = [numel / cols, cols] with their row strides.
detail::SwigluShape swiglu_shape(const torch::Tensor& a, const torch::Tensor& b) {
  detail::SwigluShape s;
  swiglu_element_of(a.scalar_type(), s.element);
  s.cols = a.size(-1);
  s.rows = a.numel() / s.cols;
  s.a_row_stride = swiglu_row_stride(a);
  s.b_row_stride = swiglu_row_stride(b);
  return s;
}

void* current_stream() { return at::cuda::getCurrentCUDAStream().stream(); }

class SwigluFunction : public torch::autograd::Function<SwigluFunction> {
 public:
  // a, b: [..., hidden] -> out = SiLU(a)·b: [..., hidden] contiguous
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& a, const torch::Tensor& b) {
    const c10::cuda::CUDAGuard guard(a.device());
    auto out = torch::empty(a.sizes(), a.options());
    detail::swiglu_forward(swiglu_shape(a, b), a.data_ptr(), b.data_ptr(), out.data_ptr(), current_stream());
    ctx->save_for_backward({a, b});
    return out;
  }

  // g = dL/dout: [..., hidden] -> da, db: [..., hidden] contiguous
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &a = saved[0], &b = saved[1];
    const c10::cuda::CUDAGuard guard(a.device());
    const auto g = grads[0].to(a.scalar_type()).contiguous();
    auto da = torch::empty(a.sizes(), a.options()), db = torch::empty(b.sizes(), b.options());
    detail::swiglu_backward(swiglu_shape(a, b), a.data_ptr(), b.data_ptr(), g.data_ptr(), da.data_ptr(),
                            db.data_ptr(), current_stream());
    return {da, db};
  }
};

}  // namespace

bool swiglu_supported(const torch::Tensor& a, const torch::Tensor& b) {
  detail::ScanElement element;
  if (!a.defined() || !b.defined() || !a.is_cuda() || b.device() != a.device() || a.dim() < 1) return false;
  if (a.sizes() != b.sizes() || b.scalar_type() != a.scalar_type() || !swiglu_element_of(a.scalar_type(), element))
    return false;
  if (a.numel() == 0 || a.numel() >= (int64_t{1} << 31)) return false;
  return swiglu_row_stride(a) >= 0 && swiglu_row_stride(b) >= 0;
}

torch::Tensor swiglu(const torch::Tensor& a, const torch::Tensor& b) {
  TORCH_CHECK(swiglu_supported(a, b),
              "mixers/cuda/swiglu_binding.cpp: swiglu: the kernels take CUDA a, b of one shape and one dtype "
              "(bf16, fp16 or float32), each viewable as rows of unit column stride; got a ", a.sizes(), " ",
              a.scalar_type(), ", b ", b.sizes(), " ", b.scalar_type(),
              "; call mixlab::swiglu (mixers/swiglu.h), which runs the reference for these");
  return SwigluFunction::apply(a, b);
}

bool swiglu_linear_supported(const torch::Tensor& x, const torch::Tensor& weight_pairs, const InputNorm& norm) {
  return skinny_linear_supported(x, weight_pairs, {}) && skinny_norm_supported(x, norm) &&
         weight_pairs.size(0) % 16 == 0;
}

torch::Tensor swiglu_linear(const torch::Tensor& x, const torch::Tensor& weight_pairs, const InputNorm& norm) {
  TORCH_CHECK(swiglu_linear_supported(x, weight_pairs, norm),
              "mixers/cuda/swiglu_binding.cpp: swiglu_linear takes what core's skinny_linear takes (bf16 x [rows, in], "
              "weight [out, in], no gradient, a bf16 norm weight [in] if any) with out a multiple of 16 (W_gate's and "
              "W_up's rows in blocks of 8); got "
              "x ", x.sizes(), " ", x.scalar_type(), ", weight ", weight_pairs.sizes(), " ", weight_pairs.scalar_type(),
              "; call mixlab::swiglu_linear (mixers/swiglu.h), which runs the product and swiglu for these");
  const c10::cuda::CUDAGuard guard(x.device());
  const auto shape = skinny_linear_shape(x, weight_pairs.size(0), norm);
  auto hidden = torch::empty({x.size(0), weight_pairs.size(0) / 2}, x.options());
  detail::swiglu_linear_bf16(shape, x.data_ptr(), weight_pairs.data_ptr(), hidden.data_ptr(), current_stream());
  return hidden;
}

}  // namespace mixlab::cuda
