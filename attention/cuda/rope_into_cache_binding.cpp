// LibTorch entry of the decode step's fused RoPE and cache write (rope_into_cache.cu): which inputs
// it takes, and the launch.  Inference only (a decode step writes its caches in place); the caller,
// mixlab::rope_into_cache (attention/kv_cache.cpp), runs its composed reference for anything else.

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "attention/cuda/kernels.h"
#include "core/cuda/kernels.h"
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

// The tables, caches, position and slot of a step with B, H, d_h of `dtype` on `device`.
bool cache_inputs_fit(int64_t batch, int64_t heads, int64_t head_dim, torch::ScalarType dtype, const torch::Device& device,
                      const torch::Tensor& position, const torch::Tensor& cos, const torch::Tensor& sin,
                      const torch::Tensor& slot, const torch::Tensor& keys, const torch::Tensor& values) {
  if (!cos.defined() || !sin.defined() || cos.dim() != 2 || sin.sizes() != cos.sizes() || cos.size(1) != head_dim ||
      cos.size(0) < 1 || !cos.is_contiguous() || !sin.is_contiguous())
    return false;
  if (!keys.defined() || keys.dim() != 4 || keys.size(0) != batch || keys.size(1) != heads || keys.size(2) < 1 ||
      keys.size(3) != head_dim || keys.stride(3) != 1)
    return false;
  if (!values.defined() || values.sizes() != keys.sizes() || values.stride(3) != 1) return false;
  for (const auto* t : {&cos, &sin, &keys, &values})
    if (t->device() != device || t->scalar_type() != dtype) return false;
  if (!device_index(position, device) || !device_index(slot, device)) return false;
  const bool gradient_asked = cos.requires_grad() || sin.requires_grad() || keys.requires_grad() || values.requires_grad();
  return !(torch::GradMode::is_enabled() && gradient_asked);
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
  if (torch::GradMode::is_enabled() && qkv.requires_grad()) return false;
  return cache_inputs_fit(qkv.size(0), qkv.size(2), head_dim, qkv.scalar_type(), qkv.device(), position, cos, sin, slot,
                          keys, values);
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

bool rope_linear_into_cache_supported(const torch::Tensor& x, const torch::Tensor& weight_pairs, int64_t heads,
                                      const torch::Tensor& position, const torch::Tensor& cos, const torch::Tensor& sin,
                                      const torch::Tensor& slot, const torch::Tensor& keys, const torch::Tensor& values,
                                      const InputNorm& norm) {
  if (!skinny_linear_supported(x, weight_pairs, {}) || !skinny_norm_supported(x, norm) || heads < 1 || weight_pairs.size(0) % (3 * heads) != 0) return false;
  const int64_t head_dim = weight_pairs.size(0) / (3 * heads);
  if (head_dim % 16 != 0 || x.size(0) * heads * (head_dim / 2) >= (int64_t{1} << 31)) return false;
  return cache_inputs_fit(x.size(0), heads, head_dim, torch::kBFloat16, x.device(), position, cos, sin, slot, keys,
                          values);
}

torch::Tensor rope_linear_into_cache(const torch::Tensor& x, const torch::Tensor& weight_pairs, int64_t heads,
                                     const torch::Tensor& position, const torch::Tensor& cos, const torch::Tensor& sin,
                                     const torch::Tensor& slot, torch::Tensor& keys, torch::Tensor& values,
                                     const InputNorm& norm) {
  TORCH_CHECK(rope_linear_into_cache_supported(x, weight_pairs, heads, position, cos, sin, slot, keys, values, norm),
              "attention/cuda/rope_into_cache_binding.cpp: rope_linear_into_cache takes what core's skinny_linear "
              "takes (bf16 x [B, d], weight [3·H·d_h, d], no gradient, a bf16 norm weight [d] if any) with d_h a multiple of 16, and the tables, "
              "caches, position and slot of rope_into_cache in bf16; got x ", x.sizes(), " ", x.scalar_type(),
              ", weight ", weight_pairs.sizes(), ", heads ", heads, ", keys ", keys.sizes(), " ", keys.scalar_type(),
              "; call mixlab::rope_linear_into_cache (attention/kv_cache.h), which runs the reference for these");
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t head_dim = weight_pairs.size(0) / (3 * heads);
  const auto linear = skinny_linear_shape(x, weight_pairs.size(0), norm);
  detail::RopeIntoCacheShape shape;
  shape.element = detail::RopeElement::bf16;
  shape.batch = static_cast<int>(x.size(0));
  shape.heads = static_cast<int>(heads);
  shape.head_dim = static_cast<int>(head_dim);
  shape.capacity = cos.size(0);
  shape.slots = keys.size(2);
  strides_into(keys, {0, 1, 2}, shape.key_stride);
  strides_into(values, {0, 1, 2}, shape.value_stride);
  auto q = torch::empty({x.size(0), heads, 1, head_dim}, x.options());  // [B, H, 1, d_h]
  detail::rope_linear_into_cache_bf16(linear, shape, x.data_ptr(), weight_pairs.data_ptr(), position.data_ptr<int64_t>(),
                                      cos.data_ptr(), sin.data_ptr(), slot.data_ptr<int64_t>(), q.data_ptr(),
                                      keys.data_ptr(), values.data_ptr(), at::cuda::getCurrentCUDAStream().stream());
  return q;
}

}  // namespace mixlab::cuda
