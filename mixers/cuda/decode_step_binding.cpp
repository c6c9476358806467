// Bindings of the decoding-step kernels (decode_step.cu, linear_conv_step.cu): which inputs they
// take, the checks, the launch.  The references are mixers/causal_depthwise_conv.h
// (causal_depthwise_conv_step), mixers/selective_scan.cpp (selective_scan_step) and
// mixers/linear_conv_step.h, which call these where they are supported;
// there is no third implementation here.  Not differentiable: taken only when no input needs a
// gradient (decoding).

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "core/cuda/kernels.h"
#include "mixers/cuda/kernels.h"
#include "mixers/cuda/launch.h"

namespace mixlab::cuda {
namespace {

bool element_of(const torch::Tensor& t, detail::ScanElement& element) {
  switch (t.scalar_type()) {
    case torch::kFloat: element = detail::ScanElement::f32; return true;
    case torch::kBFloat16: element = detail::ScanElement::bf16; return true;
    case torch::kHalf: element = detail::ScanElement::fp16; return true;
    default: return false;
  }
}

bool needs_grad(std::initializer_list<torch::Tensor> tensors) {
  if (!torch::GradMode::is_enabled()) return false;
  for (const auto& t : tensors)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

// [rows, columns] on CUDA with unit column stride.
bool rows_of(const torch::Tensor& t, int64_t rows, int64_t columns) {
  return t.defined() && t.is_cuda() && t.dim() == 2 && t.size(0) == rows && t.size(1) == columns &&
         (columns == 1 || t.stride(1) == 1);
}

const void* pointer_or_null(const torch::Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; }

}  // namespace

bool causal_conv_step_supported(const torch::Tensor& history, const torch::Tensor& a_t, const torch::Tensor& weight,
                                const torch::Tensor& bias) {
  detail::ScanElement element;
  if (!history.defined() || !history.is_cuda() || history.dim() != 3 || !history.is_contiguous()) return false;
  if (!element_of(history, element) || history.size(2) < 1) return false;
  const int64_t batch = history.size(0), channels = history.size(1), kernel = history.size(2) + 1;
  if (!rows_of(a_t, batch, channels) || a_t.scalar_type() != history.scalar_type()) return false;
  if (weight.scalar_type() != history.scalar_type() || !weight.is_cuda() || !weight.is_contiguous() ||
      weight.numel() != channels * kernel)
    return false;
  if (bias.defined() && (bias.scalar_type() != history.scalar_type() || !bias.is_cuda() || !bias.is_contiguous() ||
                         bias.numel() != channels))
    return false;
  return !needs_grad({history, a_t, weight, bias});
}

torch::Tensor causal_conv_step(torch::Tensor& history, const torch::Tensor& a_t, const torch::Tensor& weight,
                               const torch::Tensor& bias, bool silu) {
  TORCH_CHECK(causal_conv_step_supported(history, a_t, weight, bias),
              "mixers/cuda/decode_step_binding.cpp: causal_conv_step: the kernel takes contiguous CUDA history "
              "[B, C, k-1], a_t [B, C], weight [C, 1, k], bias [C] of one float dtype and no gradient; call "
              "mixlab::causal_depthwise_conv_step, which runs the reference for others");
  const c10::cuda::CUDAGuard guard(history.device());
  detail::ConvStepShape shape;
  element_of(history, shape.element);
  shape.batch = static_cast<int>(history.size(0));
  shape.channels = static_cast<int>(history.size(1));
  shape.kernel = static_cast<int>(history.size(2) + 1);
  shape.a_row_stride = a_t.stride(0);
  shape.silu = silu;
  auto out = torch::empty({history.size(0), history.size(1)}, history.options());
  detail::causal_conv_step(shape, a_t.data_ptr(), history.data_ptr(), weight.data_ptr(), pointer_or_null(bias),
                           out.data_ptr(), at::cuda::getCurrentCUDAStream().stream());
  return out;
}

bool selective_state_update_supported(const torch::Tensor& state, const torch::Tensor& u_t,
                                      const torch::Tensor& delta_t, const torch::Tensor& A, const torch::Tensor& B_t,
                                      const torch::Tensor& C_t, const torch::Tensor& D, const torch::Tensor& z_t,
                                      const torch::Tensor& delta_bias, const torch::Tensor& delta_weight) {
  detail::ScanElement element;
  if (!state.defined() || !state.is_cuda() || state.scalar_type() != torch::kFloat || state.dim() != 3 ||
      !state.is_contiguous())
    return false;
  const int64_t batch = state.size(0), channels = state.size(1), n = state.size(2);
  if (!element_of(u_t, element) || !rows_of(u_t, batch, channels)) return false;
  if (z_t.defined() && (!rows_of(z_t, batch, channels) || z_t.scalar_type() != u_t.scalar_type())) return false;
  // δ: [B, E], or [B, R] with W_Δ: [E, R]
  if (delta_weight.defined() &&
      (!delta_weight.is_cuda() || delta_weight.dim() != 2 || delta_weight.size(0) != channels ||
       delta_weight.size(1) < 1 || !delta_weight.is_contiguous() || delta_weight.scalar_type() != u_t.scalar_type()))
    return false;
  const int64_t delta_columns = delta_weight.defined() ? delta_weight.size(1) : channels;
  if (!rows_of(delta_t, batch, delta_columns) || delta_t.scalar_type() != u_t.scalar_type()) return false;
  for (const auto& t : {B_t, C_t})
    if (!rows_of(t, batch, n) || t.scalar_type() != u_t.scalar_type()) return false;
  if (B_t.stride(0) != C_t.stride(0)) return false;
  auto float_vector = [&](const torch::Tensor& t, int64_t size) {
    return !t.defined() || (t.is_cuda() && t.scalar_type() == torch::kFloat && t.is_contiguous() && t.numel() == size);
  };
  if (!A.defined() || !float_vector(A, channels * n) || !float_vector(D, channels) || !float_vector(delta_bias, channels))
    return false;
  return !needs_grad({state, u_t, delta_t, A, B_t, C_t, D, z_t, delta_bias, delta_weight});
}

torch::Tensor selective_state_update(torch::Tensor& state, const torch::Tensor& u_t, const torch::Tensor& delta_t,
                                     const torch::Tensor& A, const torch::Tensor& B_t, const torch::Tensor& C_t,
                                     const torch::Tensor& D, const torch::Tensor& z_t, const torch::Tensor& delta_bias,
                                     const torch::Tensor& delta_weight) {
  TORCH_CHECK(selective_state_update_supported(state, u_t, delta_t, A, B_t, C_t, D, z_t, delta_bias, delta_weight),
              "mixers/cuda/decode_step_binding.cpp: selective_state_update: the kernel takes a contiguous float32 "
              "CUDA state [B, E, n], u, delta, z [B, E] (delta [B, R] with a contiguous delta_weight [E, R]) and "
              "B, C [B, n] of one float dtype, A [E, n], D, delta_bias [E] float32, and no gradient; call "
              "mixlab::selective_scan_step, which runs the reference for others");
  const c10::cuda::CUDAGuard guard(state.device());
  detail::StateUpdateShape shape;
  element_of(u_t, shape.element);
  shape.batch = static_cast<int>(state.size(0));
  shape.channels = static_cast<int>(state.size(1));
  shape.n = static_cast<int>(state.size(2));
  shape.u_row_stride = u_t.stride(0);
  shape.delta_row_stride = delta_t.stride(0);
  shape.delta_rank = delta_weight.defined() ? static_cast<int>(delta_weight.size(1)) : 0;
  shape.bc_row_stride = B_t.stride(0);
  shape.z_row_stride = z_t.defined() ? z_t.stride(0) : 0;
  auto out = torch::empty({state.size(0), state.size(1)}, u_t.options());
  detail::selective_state_update(shape, state.data_ptr<float>(), u_t.data_ptr(), delta_t.data_ptr(), A.data_ptr<float>(),
                                 B_t.data_ptr(), C_t.data_ptr(), D.defined() ? D.data_ptr<float>() : nullptr,
                                 pointer_or_null(z_t), delta_bias.defined() ? delta_bias.data_ptr<float>() : nullptr,
                                 pointer_or_null(delta_weight), out.data_ptr(), at::cuda::getCurrentCUDAStream().stream());
  return out;
}

bool linear_conv_step_supported(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                                const torch::Tensor& history, const torch::Tensor& conv_weight,
                                const torch::Tensor& conv_bias, const InputNorm& norm) {
  if (!skinny_linear_supported(x, weight, bias) || !skinny_norm_supported(x, norm)) return false;
  if (!history.defined() || !history.is_cuda() || history.device() != x.device() || history.dim() != 3 ||
      !history.is_contiguous() || history.scalar_type() != torch::kBFloat16)
    return false;
  const int64_t channels = history.size(1), taps = history.size(2) + 1;
  if (history.size(0) != x.size(0) || channels < 1 || channels > weight.size(0) || taps < 2) return false;
  auto bf16_vector = [&](const torch::Tensor& t, int64_t size) {
    return t.is_cuda() && t.device() == x.device() && t.scalar_type() == torch::kBFloat16 && t.is_contiguous() &&
           t.numel() == size;
  };
  if (!conv_weight.defined() || !bf16_vector(conv_weight, channels * taps)) return false;
  if (conv_bias.defined() && !bf16_vector(conv_bias, channels)) return false;
  return !needs_grad({history, conv_weight, conv_bias});  // x, weight, bias: skinny_linear_supported's
}

std::pair<torch::Tensor, torch::Tensor> linear_conv_step(const torch::Tensor& x, const torch::Tensor& weight,
                                                         const torch::Tensor& bias, torch::Tensor& history,
                                                         const torch::Tensor& conv_weight,
                                                         const torch::Tensor& conv_bias, const InputNorm& norm) {
  TORCH_CHECK(linear_conv_step_supported(x, weight, bias, history, conv_weight, conv_bias, norm),
              "mixers/cuda/decode_step_binding.cpp: linear_conv_step takes what core's skinny_linear takes (bf16 x "
              "[rows, in], weight [out, in], bias [out], a norm weight [in] if any) and a contiguous bf16 history [rows, C, k-1] with C <= out, "
              "conv weight [C, 1, k] and conv bias [C], none needing a gradient; got x ", x.sizes(), ", weight ",
              weight.sizes(), ", history ", history.sizes(), " ", history.scalar_type(),
              "; call mixlab::linear_conv_step (mixers/linear_conv_step.h), which runs the two ops in turn for these");
  const c10::cuda::CUDAGuard guard(x.device());
  detail::LinearConvStepShape shape;
  shape.linear = skinny_linear_shape(x, weight.size(0), norm);
  shape.channels = static_cast<int>(history.size(1));
  shape.taps = static_cast<int>(history.size(2) + 1);
  auto xz = torch::empty({x.size(0), weight.size(0)}, x.options());
  auto u = torch::empty({x.size(0), history.size(1)}, x.options());
  detail::linear_conv_step(shape, x.data_ptr(), weight.data_ptr(), pointer_or_null(bias), xz.data_ptr(),
                           history.data_ptr(), conv_weight.data_ptr(), pointer_or_null(conv_bias), u.data_ptr(),
                           at::cuda::getCurrentCUDAStream().stream());
  return {xz, u};
}

}  // namespace mixlab::cuda
