#include "attention/kv_cache.h"

#include "attention/rope.h"
#include "core/compat.h"
#include "core/implementation.h"
#include "core/skinny_linear.h"

#ifdef MIXLAB_WITH_CUDA
#include "attention/cuda/kernels.h"
#endif

#include <algorithm>
#include <cmath>
#include <vector>
#include <limits>

namespace mixlab {

namespace {

// The whole buffer behind `cache` when `cache` is the first slots of a buffer we made
// ([B, H, C, d] contiguous, narrowed along dim 2 from 0) and nothing else holds the view (the
// state's map entry is its one reference); else an undefined tensor.
torch::Tensor reusable_buffer(const torch::Tensor& cache, const torch::Tensor& x) {
  const int64_t B = x.size(0), H = x.size(1), d = x.size(3);
  if (!cache.defined() || cache.dim() != 4 || d == 0 || cache.numel() == 0) return {};
  if (cache.stride(3) != 1 || cache.stride(2) != d || cache.stride(1) % d != 0) return {};
  const int64_t capacity = cache.stride(1) / d;
  if (capacity < cache.size(2) || cache.stride(0) != H * capacity * d || cache.storage_offset() != 0) return {};
  if (cache.storage().nbytes() < static_cast<size_t>(B * H * capacity * d) * cache.element_size()) return {};
  if (cache.scalar_type() != x.scalar_type() || cache.device() != x.device()) return {};
  if (cache.use_count() > 1) return {};  // a copied state (or a saved view) holds it: do not write into it
  if (torch::GradMode::is_enabled() && (x.requires_grad() || cache.requires_grad())) return {};
  return cache.as_strided({B, H, capacity, d}, {H * capacity * d, capacity * d, d, 1});
}

// A fresh buffer of `capacity` slots holding the `used` slots of `cache`.
torch::Tensor grown_buffer(const torch::Tensor& cache, const torch::Tensor& x, int64_t used, int64_t capacity) {
  auto buffer = torch::empty({x.size(0), x.size(1), capacity, x.size(3)}, x.options());  // [B, H, C, d]
  if (used > 0) buffer.narrow(2, 0, used).copy_(cache.narrow(2, 0, used));
  return buffer;
}

// Appends x's slots after the cache's, growing the buffer by doubling up to `max_capacity`.
torch::Tensor append_slots(const torch::Tensor& cache, const torch::Tensor& x, int64_t max_capacity) {
  const int64_t used = cache.defined() && cache.dim() == 4 ? cache.size(2) : 0, added = x.size(2);
  torch::Tensor buffer = reusable_buffer(cache, x);
  if (!buffer.defined() || buffer.size(2) < used + added)
    buffer = grown_buffer(cache, x, used, std::min(max_capacity, std::max({int64_t{16}, 2 * used, used + added})));
  buffer.narrow(2, used, added).copy_(x);
  return buffer.narrow(2, 0, used + added);
}

}  // namespace

torch::Tensor append_to_cache(const torch::Tensor& cache, const torch::Tensor& x) {
  return append_slots(cache, x, std::numeric_limits<int64_t>::max());
}

torch::Tensor append_to_window(const torch::Tensor& cache, const torch::Tensor& x, int64_t position, int64_t window) {
  const int64_t used = cache.defined() && cache.dim() == 4 ? cache.size(2) : 0;
  if (used < window) return append_slots(cache, x, window);  // still filling: slot t = position
  torch::Tensor buffer = reusable_buffer(cache, x);           // full: overwrite the oldest slot
  if (!buffer.defined()) buffer = grown_buffer(cache, x, window, window);
  buffer = buffer.narrow(2, 0, window);
  buffer.narrow(2, position % window, 1).copy_(x);
  return buffer;
}

}  // namespace mixlab

namespace mixlab {

void write_slot(torch::Tensor& buffer, const torch::Tensor& slot, const torch::Tensor& x) {
  buffer.index_copy_(2, slot, x.to(buffer.scalar_type()));
}

torch::Tensor rope_into_cache(const torch::Tensor& qkv, const torch::Tensor& position, const torch::Tensor& cos,
                              const torch::Tensor& sin, const torch::Tensor& slot, torch::Tensor& keys,
                              torch::Tensor& values) {
  TORCH_CHECK(qkv.dim() == 5 && qkv.size(1) == 3 && qkv.size(3) == 1,
              "rope_into_cache: qkv must be [B, 3, H, 1, d_h], got ", qkv.sizes());
#ifdef MIXLAB_WITH_CUDA
  if (cuda::rope_into_cache_supported(qkv, position, cos, sin, slot, keys, values)) {
    record_implementation("rope_into_cache", Implementation::kernel);
    return cuda::rope_into_cache(qkv, position, cos, sin, slot, keys, values);
  }
#endif
  record_implementation("rope_into_cache", Implementation::reference);
  const int64_t batch = qkv.size(0), heads = qkv.size(2), head_dim = qkv.size(4);
  const auto qk = qkv.narrow(1, 0, 2).reshape({batch, 2 * heads, 1, head_dim});  // q and k as 2H heads
  const auto rotated = apply_rope(qk, cos.index_select(0, position), sin.index_select(0, position))
                           .reshape({batch, 2, heads, 1, head_dim});
  write_slot(keys, slot, rotated.select(1, 1));
  write_slot(values, slot, qkv.select(1, 2));
  return rotated.select(1, 0);  // [B, H, 1, d_h]
}

torch::Tensor pair_rope_halves(const torch::Tensor& qkv_weight, int64_t heads, int64_t head_dim) {
  TORCH_CHECK(head_dim % 16 == 0 && qkv_weight.dim() == 2 && qkv_weight.size(0) == 3 * heads * head_dim,
              "pair_rope_halves: the weight must be [3·H·d_h, d] with d_h a multiple of 16; got ", qkv_weight.sizes(),
              " for H = ", heads, ", d_h = ", head_dim);
  const int64_t d = qkv_weight.size(1);
  // rows (part, h, half s, block k, j) -> (part, h, k, s, j)
  return qkv_weight.reshape({3, heads, 2, head_dim / 16, 8, d}).permute({0, 1, 3, 2, 4, 5}).reshape({3 * heads * head_dim, d});
}

torch::Tensor rope_linear_into_cache(const torch::Tensor& x_t, const torch::Tensor& weight_pairs, int64_t heads,
                                     const torch::Tensor& position, const torch::Tensor& cos, const torch::Tensor& sin,
                                     const torch::Tensor& slot, torch::Tensor& keys, torch::Tensor& values,
                                     const InputNorm& norm) {
#ifdef MIXLAB_WITH_CUDA
  if (cuda::rope_linear_into_cache_supported(x_t, weight_pairs, heads, position, cos, sin, slot, keys, values, norm)) {
    record_implementation("rope_linear_into_cache", Implementation::kernel);
    return cuda::rope_linear_into_cache(x_t, weight_pairs, heads, position, cos, sin, slot, keys, values, norm);
  }
#endif
  record_implementation("rope_linear_into_cache", Implementation::reference);
  const int64_t batch = x_t.size(0), head_dim = weight_pairs.size(0) / (3 * heads);
  // [B, (part, h, k, s, j)] -> [B, 3, H, 1, d_h] with d = s·d_h/2 + 8k + j
  const auto qkv = skinny_linear(x_t, weight_pairs, {}, norm)
                       .view({batch, 3, heads, head_dim / 16, 2, 8})
                       .permute({0, 1, 2, 4, 3, 5})
                       .reshape({batch, 3, heads, 1, head_dim});
  return rope_into_cache(qkv, position, cos, sin, slot, keys, values);
}

torch::Tensor attend_to_prefix(const torch::Tensor& q, const torch::Tensor& keys, const torch::Tensor& values,
                               int64_t count, const torch::Tensor& position, int64_t divisor) {
  TORCH_CHECK(count > 0 && count <= keys.size(2), "attend_to_prefix: count must be in [1, ", keys.size(2), "], got ", count);
  TORCH_CHECK(divisor >= 1, "attend_to_prefix: divisor must be >= 1, got ", divisor);
#ifdef MIXLAB_WITH_CUDA
  if (cuda::slot_attention_supported(q, keys, values, count, position)) {
    record_implementation("attend_to_prefix", Implementation::kernel);
    return cuda::slot_attention(q, keys, values, count, position, divisor);
  }
#endif
  record_implementation("attend_to_prefix", Implementation::reference);
  const auto last = divisor == 1 ? position : position.div(divisor, "floor");     // [1]
  const auto hidden = torch::arange(count, position.options()) > last;           // [count]
  return compat::masked_attention(q, keys.narrow(2, 0, count), values.narrow(2, 0, count), hidden);
}

}  // namespace mixlab
