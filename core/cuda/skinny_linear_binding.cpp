// LibTorch entry of the few-row linear kernel (skinny_linear.cu): which inputs it takes and the
// launch.  The reference is at::linear, which mixlab::skinny_linear (core/skinny_linear.h) runs
// wherever skinny_linear_supported fails.  Inference only: no autograd Function (the dispatch
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

torch::Tensor skinny_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  TORCH_CHECK(skinny_linear_supported(x, weight, bias),
              "core/cuda/skinny_linear_binding.cpp: skinny_linear takes CUDA bf16 x [rows <= ", detail::kSkinnyMaxRows,
              ", in] (unit column stride, row stride a multiple of ", detail::kSkinnyVector,
              ", 16-byte aligned), a contiguous bf16 weight [out, in] and an optional bf16 bias [out], none "
              "needing a gradient; got x ", x.sizes(), " ", x.scalar_type(), ", weight ", weight.sizes(), " ",
              weight.scalar_type(), "; call mixlab::skinny_linear (core/skinny_linear.h), which runs at::linear for these");
  const c10::cuda::CUDAGuard guard(x.device());
  auto y = torch::empty({x.size(0), weight.size(0)}, x.options());
  detail::SkinnyLinearShape shape;
  shape.rows = x.size(0);
  shape.in = x.size(1);
  shape.out = weight.size(0);
  shape.x_row_stride = x.size(0) > 1 ? x.stride(0) : x.size(1);
  detail::skinny_linear_bf16(shape, x.data_ptr(), weight.data_ptr(), bias.defined() ? bias.data_ptr() : nullptr,
                             y.data_ptr(), at::cuda::getCurrentCUDAStream().stream());
  return y;
}

}  // namespace mixlab::cuda
