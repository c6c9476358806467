// LibTorch entry of the output projection with the residual add and the next RMSNorm as its store
// (linear_add_rms_norm.cu): which inputs it takes, and the launch.  Inference only: anything that
// needs a gradient goes to the reference, mixlab::linear_add_rms_norm (harness/linear_add_rms_norm.h).

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <cstdint>

#include "core/cuda/kernels.h"
#include "harness/cuda/kernels.h"
#include "harness/cuda/launch.h"

namespace mixlab::cuda {
namespace {

bool aligned16(const torch::Tensor& t) { return reinterpret_cast<std::uintptr_t>(t.data_ptr()) % 16 == 0; }

// A contiguous, 16-byte aligned bf16 tensor of `sizes` on x's device that needs no gradient.
bool plain_bf16(const torch::Tensor& t, const torch::Tensor& x, at::IntArrayRef sizes) {
  if (!t.defined() || t.device() != x.device() || t.scalar_type() != torch::kBFloat16 || t.sizes() != sizes) return false;
  if (torch::GradMode::is_enabled() && t.requires_grad()) return false;
  return t.is_contiguous() && aligned16(t);
}

}  // namespace

bool linear_add_rms_norm_supported(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                                   const torch::Tensor& residual, const torch::Tensor& norm_weight) {
  if (!skinny_linear_supported(x, weight, bias)) return false;
  const int64_t rows = x.size(0), d = weight.size(0);
  if (d % detail::kAddNormVector != 0 || d > detail::kAddNormMaxCols) return false;
  return plain_bf16(residual, x, {rows, d}) && plain_bf16(norm_weight, x, {d});
}

std::pair<torch::Tensor, torch::Tensor> linear_add_rms_norm(const torch::Tensor& x, const torch::Tensor& weight,
                                                            const torch::Tensor& bias, const torch::Tensor& residual,
                                                            const torch::Tensor& norm_weight, double eps) {
  TORCH_CHECK(linear_add_rms_norm_supported(x, weight, bias, residual, norm_weight),
              "harness/cuda/linear_add_rms_norm_binding.cpp: linear_add_rms_norm takes what skinny_linear takes (CUDA "
              "bf16 x [rows <= ", detail::kSkinnyMaxRows, ", in], weight [d, in], optional bias [d]) with a bf16 "
              "residual [rows, d] and norm weight [d], contiguous, d a multiple of ", detail::kAddNormVector, " up to ",
              detail::kAddNormMaxCols, ", none needing a gradient; got x ", x.sizes(), " ", x.scalar_type(), ", weight ",
              weight.sizes(), " ", weight.scalar_type(), ", residual ", residual.sizes(), " ", residual.scalar_type(),
              ", norm weight ", norm_weight.sizes(), " ", norm_weight.scalar_type(),
              "; call mixlab::linear_add_rms_norm (harness/linear_add_rms_norm.h), which runs the two ops for these");
  const c10::cuda::CUDAGuard guard(x.device());
  detail::SkinnyLinearShape shape;
  shape.rows = x.size(0);
  shape.in = x.size(1);
  shape.out = weight.size(0);
  shape.x_row_stride = x.size(0) > 1 ? x.stride(0) : x.size(1);
  auto h = torch::empty_like(residual), y = torch::empty_like(residual);
  detail::linear_add_rms_norm_bf16(shape, x.data_ptr(), weight.data_ptr(), bias.defined() ? bias.data_ptr() : nullptr,
                                   residual.data_ptr(), norm_weight.data_ptr(), static_cast<float>(eps), h.data_ptr(),
                                   y.data_ptr(), at::cuda::getCurrentCUDAStream().stream());
  return {h, y};
}

}  // namespace mixlab::cuda
