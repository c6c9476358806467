// LibTorch entry of the slot-attention kernel (slot_attention.cu): which inputs it takes, shape
// checks, the scratch for the splits.  Inference only (a decode step); the caller,
// attend_to_prefix (attention/kv_cache.cpp), runs its composed reference for anything else.

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <cmath>
#include <cstdint>

#include "attention/cuda/kernels.h"
#include "attention/cuda/slot_attention.h"

namespace mixlab::cuda {
namespace {

bool element_of(torch::ScalarType dtype, detail::SlotElement& element) {
  if (dtype == torch::kBFloat16) element = detail::SlotElement::bf16;
  else if (dtype == torch::kHalf) element = detail::SlotElement::fp16;
  else if (dtype == torch::kFloat32) element = detail::SlotElement::fp32;
  else return false;
  return true;
}

}  // namespace

bool slot_attention_supported(const torch::Tensor& q, const torch::Tensor& keys, const torch::Tensor& values,
                              int64_t count, const torch::Tensor& position) {
  detail::SlotElement element;
  if (!q.defined() || !q.is_cuda() || q.dim() != 4 || keys.dim() != 4 || q.size(2) != 1) return false;
  if (keys.sizes() != values.sizes() || keys.size(0) != q.size(0) || keys.size(1) != q.size(1) ||
      keys.size(3) != q.size(3))
    return false;
  if (keys.device() != q.device() || values.device() != q.device() || position.device() != q.device()) return false;
  if (keys.scalar_type() != q.scalar_type() || values.scalar_type() != q.scalar_type() || !element_of(q.scalar_type(), element))
    return false;
  if (!keys.is_contiguous() || !values.is_contiguous() || torch::GradMode::is_enabled()) return false;
  if (position.scalar_type() != torch::kLong || position.numel() != 1) return false;
  return count >= 1 && count <= keys.size(2) && keys.size(2) <= INT32_MAX &&
         detail::slot_attention_supported(static_cast<int>(q.size(3)));
}

torch::Tensor slot_attention(const torch::Tensor& q, const torch::Tensor& keys, const torch::Tensor& values,
                             int64_t count, const torch::Tensor& position, int64_t divisor) {
  TORCH_CHECK(slot_attention_supported(q, keys, values, count, position) && divisor >= 1,
              "attention/cuda/slot_attention_binding.cpp: unsupported inputs: q ", q.sizes(), " ", q.scalar_type(),
              ", keys ", keys.sizes(), ", count ", count, ", position ", position.sizes(), ", divisor ", divisor,
              " (see slot_attention_supported)");
  const c10::cuda::CUDAGuard guard(q.device());
  detail::SlotAttentionShape shape;
  element_of(q.scalar_type(), shape.element);
  shape.batch_heads = static_cast<int>(q.size(0) * q.size(1));
  shape.capacity = static_cast<int>(keys.size(2));
  shape.count = static_cast<int>(count);
  shape.divisor = divisor;
  shape.head_dim = static_cast<int>(q.size(3));
  shape.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(q.size(3))));
  detail::slot_attention_splits(shape);
  const auto q_rows = q.contiguous();  // [B, H, 1, d_h] as [BH, d_h]
  const auto t = position.contiguous();
  auto partial = torch::empty({shape.batch_heads, shape.splits, shape.head_dim + 2},
                              q.options().dtype(torch::kFloat32));
  auto out = torch::empty_like(q_rows);
  detail::slot_attention(shape, q_rows.data_ptr(), keys.data_ptr(), values.data_ptr(),
                         t.data_ptr<int64_t>(), partial.data_ptr<float>(),
                         out.data_ptr(), at::cuda::getCurrentCUDAStream().stream());
  return out;
}

}  // namespace mixlab::cuda
