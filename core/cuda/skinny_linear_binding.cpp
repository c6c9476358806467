// LibTorch entries of the few-row linear kernel (skinny_linear.cu): which inputs it takes and the
// launch, with a norm folded in (core/input_norm.h) or the residual add as the store.  The
// reference is at::linear, which mixlab::skinny_linear (core/skinny_linear.h) runs wherever
// skinny_linear_supported fails.  Inference only: no autograd Function (the dispatch
// sends anything that needs a gradient to the reference).

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "core/cuda/kernels.h"
#include "core/cuda/skinny_linear_launch.h"

namespace mixlab::cuda {
namespace {

bool aligned16(const torch::Tensor& t) { return reinterpret_cast<std::uintptr_t>(t.data_ptr()) % 16 == 0; }

}  // namespace

bool skinny_linear_supported(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  using detail::kSkinnyVector;
  if (!x.defined() || !weight.defined() || !x.is_cuda() || weight.device() != x.device()) return false;
  if (x.scalar_type() != torch::kBFloat16 || weight.scalar_type() != torch::kBFloat16) return false;
  if (torch::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad() ||
                                        (bias.defined() && bias.requires_grad())))
    return false;
  if (x.dim() != 2 || weight.dim() != 2 || x.size(1) != weight.size(1)) return false;
  const int64_t rows = x.size(0), in = x.size(1), out = weight.size(0);
  if (rows < 1 || rows > detail::kSkinnyMaxRows || in < kSkinnyVector || in % kSkinnyVector != 0 || out < 1) return false;
  if (x.stride(1) != 1 || (rows > 1 && (x.stride(0) < in || x.stride(0) % kSkinnyVector != 0))) return false;
  if (!weight.is_contiguous() || !aligned16(x) || !aligned16(weight)) return false;
  if (bias.defined() && (bias.device() != x.device() || bias.scalar_type() != torch::kBFloat16 || bias.dim() != 1 ||
                         bias.size(0) != out || !bias.is_contiguous()))
    return false;
  return true;
}

bool skinny_norm_supported(const torch::Tensor& x, const InputNorm& norm) {
  if (!norm.defined()) return true;
  const auto& g = norm.weight;
  if (g.device() != x.device() || g.scalar_type() != torch::kBFloat16 || g.dim() != 1 || g.size(0) != x.size(-1) ||
      !g.is_contiguous() || !aligned16(g))
    return false;
  return !(torch::GradMode::is_enabled() && g.requires_grad());
}

detail::SkinnyLinearShape skinny_linear_shape(const torch::Tensor& x, int64_t out, const InputNorm& norm) {
  detail::SkinnyLinearShape shape;
  shape.rows = x.size(0);
  shape.in = x.size(1);
  shape.out = out;
  shape.x_row_stride = x.size(0) > 1 ? x.stride(0) : x.size(1);
  if (norm.defined()) {
    shape.norm_weight = norm.weight.data_ptr();
    shape.norm_eps = static_cast<float>(norm.eps);
  }
  return shape;
}

torch::Tensor skinny_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                            const InputNorm& norm) {
  TORCH_CHECK(skinny_linear_supported(x, weight, bias) && skinny_norm_supported(x, norm),
              "core/cuda/skinny_linear_binding.cpp: skinny_linear takes CUDA bf16 x [rows <= ", detail::kSkinnyMaxRows,
              ", in] (unit column stride, row stride a multiple of ", detail::kSkinnyVector,
              ", 16-byte aligned), a contiguous bf16 weight [out, in], an optional bf16 bias [out] and an optional "
              "contiguous bf16 norm weight [in], none needing a gradient; got x ", x.sizes(), " ", x.scalar_type(),
              ", weight ", weight.sizes(), " ", weight.scalar_type(),
              "; call mixlab::skinny_linear (core/skinny_linear.h), which runs at::linear for these");
  const c10::cuda::CUDAGuard guard(x.device());
  auto y = torch::empty({x.size(0), weight.size(0)}, x.options());
  detail::skinny_linear_bf16(skinny_linear_shape(x, weight.size(0), norm), x.data_ptr(), weight.data_ptr(),
                             bias.defined() ? bias.data_ptr() : nullptr, y.data_ptr(),
                             at::cuda::getCurrentCUDAStream().stream());
  return y;
}

bool skinny_linear_add_supported(const torch::Tensor& residual, const torch::Tensor& x, const torch::Tensor& weight,
                                 const torch::Tensor& bias) {
  if (!skinny_linear_supported(x, weight, bias) || !residual.defined()) return false;
  if (residual.device() != x.device() || residual.scalar_type() != torch::kBFloat16 || residual.dim() != 2 ||
      residual.size(0) != x.size(0) || residual.size(1) != weight.size(0) || !residual.is_contiguous())
    return false;
  return !(torch::GradMode::is_enabled() && residual.requires_grad());
}

torch::Tensor skinny_linear_add(const torch::Tensor& residual, const torch::Tensor& x, const torch::Tensor& weight,
                                const torch::Tensor& bias) {
  TORCH_CHECK(skinny_linear_add_supported(residual, x, weight, bias),
              "core/cuda/skinny_linear_binding.cpp: skinny_linear_add takes what skinny_linear takes and a contiguous "
              "bf16 residual [rows, out], none needing a gradient; got residual ", residual.sizes(), " ",
              residual.scalar_type(), ", x ", x.sizes(), ", weight ", weight.sizes(),
              "; call mixlab::skinny_linear_add (core/skinny_linear.h), which adds at::linear's product for these");
  const c10::cuda::CUDAGuard guard(x.device());
  auto y = torch::empty_like(residual);
  detail::skinny_linear_add_bf16(skinny_linear_shape(x, weight.size(0)), x.data_ptr(), weight.data_ptr(),
                                 bias.defined() ? bias.data_ptr() : nullptr, residual.data_ptr(), y.data_ptr(),
                                 at::cuda::getCurrentCUDAStream().stream());
  return y;
}

}  // namespace mixlab::cuda
