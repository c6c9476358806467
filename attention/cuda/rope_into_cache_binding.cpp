// LibTorch entry of the decode step's fused RoPE and cache write (rope_into_cache.cu): which inputs
// it takes, and the launch.  Inference only (a decode step writes its caches in place); the caller,
// mixlab::rope_into_cache (attention/kv_cache.cpp), runs its composed reference for anything else.

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "attention/cuda/kernels.h"
#include "attention/cuda/rope_into_cache_launch.h"

namespace mixlab::cuda {
namespace {

// The kernel's element type of `dtype`; false for a dtype it is not built for.
bool element_of(torch::ScalarType dtype, detail::RopeElement& element) {
  if (dtype == torch::kFloat32) element = detail::RopeElement::f32;
  else if (dtype == torch::kBFloat16) element = detail::RopeElement::bf16;
  else if (dtype == torch::kHalf) element = detail::RopeElement::fp16;
  else return false;
  return true;
}

// One int64 on `device`: the position t or the slot m.
bool device_index(const torch::Tensor& index, const torch::Device& device) {
  return index.defined() && index.device() == device && index.scalar_type() == torch::kLong && index.numel() == 1;
}

// qkv [B, 3, H, 1, d_h] and a cache [B, H, slots, d_h] of the same B, H, d_h, each unit stride in d_h.
bool cache_fits(const torch::Tensor& qkv, const torch::Tensor& cache) {
  return cache.defined() && cache.dim() == 4 && cache.size(0) == qkv.size(0) && cache.size(1) == qkv.size(2) &&
         cache.size(2) >= 1 && cache.size(3) == qkv.size(4) && cache.stride(3) == 1;
}

// Strides over (b, h, slot) of a cache, or (b, part, h) of qkv.
void strides_into(const torch::Tensor& t, std::initializer_list<int64_t> dims, long long (&out)[3]) {
  int d = 0;
  for (const int64_t dim : dims) out[d++] = t.stride(dim);
}

detail::RopeIntoCacheShape shape_of(const torch::Tensor& qkv, const torch::Tensor& cos, const torch::Tensor& keys,
                                    const torch::Tensor& values) {
  detail::RopeIntoCacheShape s;
  element_of(qkv.scalar_type(), s.element);
  s.batch = static_cast<int>(qkv.size(0));
  s.heads = static_cast<int>(qkv.size(2));
  s.head_dim = static_cast<int>(qkv.size(4));
  s.capacity = cos.size(0);
  s.slots = keys.size(2);
  strides_into(qkv, {0, 1, 2}, s.qkv_stride);
  strides_into(keys, {0, 1, 2}, s.key_stride);
  strides_into(values, {0, 1, 2}, s.value_stride);
  return s;
}

}  // namespace

bool rope_into_cache_supported(const torch::Tensor& qkv, const torch::Tensor& position, const torch::Tensor& cos,
                               const torch::Tensor& sin, const torch::Tensor& slot, const torch::Tensor& keys,
                               const torch::Tensor& values) {
  detail::RopeElement element;
  if (!qkv.defined() || !qkv.is_cuda() || qkv.dim() != 5 || qkv.size(1) != 3 || qkv.size(3) != 1) return false;
  const int64_t head_dim = qkv.size(4);
  if (qkv.stride(4) != 1 || head_dim < 2 || head_dim % 2 != 0 || !element_of(qkv.scalar_type(), element)) return false;
  if (qkv.size(0) < 1 || qkv.size(2) < 1 || qkv.size(0) * qkv.size(2) * (head_dim / 2) >= (int64_t{1} << 31))
    return false;
  if (!cos.defined() || !sin.defined() || cos.dim() != 2 || sin.sizes() != cos.sizes() || cos.size(1) != head_dim ||
      cos.size(0) < 1 || !cos.is_contiguous() || !sin.is_contiguous())
    return false;
  if (!cache_fits(qkv, keys) || !values.defined() || values.sizes() != keys.sizes() || values.stride(3) != 1)
    return false;
  for (const auto* t : {&cos, &sin, &keys, &values})
    if (t->device() != qkv.device() || t->scalar_type() != qkv.scalar_type()) return false;
  if (!device_index(position, qkv.device()) || !device_index(slot, qkv.device())) return false;
  const bool gradient_asked = qkv.requires_grad() || cos.requires_grad() || sin.requires_grad() ||
                              keys.requires_grad() || values.requires_grad();
  return !(torch::GradMode::is_enabled() && gradient_asked);
}

torch::Tensor rope_into_cache(const torch::Tensor& qkv, const torch::Tensor& position, const torch::Tensor& cos,
                              const torch::Tensor& sin, const torch::Tensor& slot, torch::Tensor& keys,
                              torch::Tensor& values) {
  TORCH_CHECK(rope_into_cache_supported(qkv, position, cos, sin, slot, keys, values),
              "attention/cuda/rope_into_cache_binding.cpp: the kernel takes CUDA qkv [B, 3, H, 1, d_h] (even d_h; "
              "bf16, fp16 or float32), tables [capacity, d_h] contiguous, caches [B, H, slots, d_h] of qkv's dtype "
              "and device, int64 [1] position and slot there, and no gradient asked; got qkv ", qkv.sizes(), " ",
              qkv.scalar_type(), ", cos ", cos.sizes(), " ", cos.scalar_type(), ", keys ", keys.sizes(), " ",
              keys.scalar_type(), "; call mixlab::rope_into_cache (attention/kv_cache.h), which runs the "
              "reference for these");
  const c10::cuda::CUDAGuard guard(qkv.device());
  auto q = torch::empty({qkv.size(0), qkv.size(2), 1, qkv.size(4)}, qkv.options());  // [B, H, 1, d_h]
  detail::rope_into_cache(shape_of(qkv, cos, keys, values), qkv.data_ptr(), position.data_ptr<int64_t>(),
                          cos.data_ptr(), sin.data_ptr(), slot.data_ptr<int64_t>(), q.data_ptr(), keys.data_ptr(),
                          values.data_ptr(), at::cuda::getCurrentCUDAStream().stream());
  return q;
}

}  // namespace mixlab::cuda
