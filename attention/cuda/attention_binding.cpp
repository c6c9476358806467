// Autograd wrappers of the attention kernels (flash_attention.cu): which inputs the kernels take
// (`*_supported`), the dtype the op computes in (autocast's rule for a custom op), shape checks,
// the checkpoint gather, and the saved tensors.  The kernels take bf16 and fp16 with head dim 64
// or 128; for anything else the caller runs the mixer's own reference (attention/swa.cpp,
// attention/checkpoint_attention.cpp): there is no third implementation here.

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <cmath>

#include "attention/cuda/kernels.h"
#include "attention/cuda/launch.h"
#include "core/compat.h"
#include "core/implementation.h"

namespace mixlab::cuda {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

void check_qkv(const char* fn, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  TORCH_CHECK(q.dim() == 4, "attention/cuda/attention_binding.cpp: ", fn, ": q must be [B, H, N, d_h], got ", q.sizes());
  TORCH_CHECK(k.sizes() == q.sizes() && v.sizes() == q.sizes(), "attention/cuda/attention_binding.cpp: ", fn,
              ": q, k, v must have one shape, got ", q.sizes(), ", ", k.sizes(), ", ", v.sizes());
  TORCH_CHECK(q.is_cuda() && k.device() == q.device() && v.device() == q.device(),
              "attention/cuda/attention_binding.cpp: ", fn, ": q, k, v must be CUDA tensors on one device");
}

// Whether the kernels take q, k, v once cast to the op's dtype: CUDA, one shape, bf16/fp16, head
// dim 64 or 128.
bool kernels_take(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  if (!q.defined() || q.dim() != 4 || !q.is_cuda() || k.sizes() != q.sizes() || v.sizes() != q.sizes()) return false;
  if (k.device() != q.device() || v.device() != q.device()) return false;
  const auto dtype = compat::custom_op_dtype({q, k, v});
  return (dtype == torch::kBFloat16 || dtype == torch::kHalf) && detail::attention_supported(static_cast<int>(q.size(3)));
}

detail::AttentionShape make_shape(const torch::Tensor& q, detail::Mask mask, int64_t n_keys) {
  detail::AttentionShape sh;
  sh.element = q.scalar_type() == torch::kBFloat16 ? detail::Element::bf16 : detail::Element::fp16;
  sh.mask = mask;
  sh.batch_heads = static_cast<int>(q.size(0) * q.size(1));
  sh.layout.heads = static_cast<int>(q.size(1));
  sh.n = static_cast<int>(q.size(2));
  sh.n_keys = static_cast<int>(n_keys);
  sh.head_dim = static_cast<int>(q.size(3));
  sh.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(q.size(3))));
  return sh;
}

void* current_stream() { return at::cuda::getCurrentCUDAStream().stream(); }

// x [B, H, rows, d_h] as the kernels read it in place (launch.h, RowStrides): a unit stride in d_h,
// the other strides and the address multiples of 16 bytes, rows · row stride < 2^31.  The heads of
// the q/k/v product ([B, N, 3, H, d_h] memory, transposed) qualify; anything else is copied to
// contiguous here.
torch::Tensor kernel_readable(const torch::Tensor& x) {
  const int64_t align = 16 / static_cast<int64_t>(x.element_size());
  const bool in_place = x.stride(3) == 1 && x.stride(0) % align == 0 && x.stride(1) % align == 0 &&
                        x.stride(2) % align == 0 && reinterpret_cast<uintptr_t>(x.data_ptr()) % 16 == 0 &&
                        x.size(2) * x.stride(2) < (int64_t{1} << 31);
  return in_place ? x : x.contiguous();
}

detail::RowStrides rows_of(const torch::Tensor& x) {  // x [B, H, rows, d_h], kernel_readable
  return {x.stride(0), x.stride(1), static_cast<int>(x.stride(2))};
}

// The output [B, H, N, d_h] laid out as [B, N, H, d_h] in memory: merging its heads afterwards
// (multi_head.h, output: transpose(1, 2).reshape) is then a view, not a copy.
torch::Tensor empty_heads_token_major(const torch::Tensor& q) {
  return torch::empty({q.size(0), q.size(2), q.size(1), q.size(3)}, q.options()).transpose(1, 2);
}

// Every operand's strides (the kernels' k, v: the keys the mask walks; k_self, v_self: the full ones).
void set_layout(detail::AttentionLayout& layout, const torch::Tensor& q, const torch::Tensor& k,
                const torch::Tensor& v, const torch::Tensor& k_self, const torch::Tensor& v_self,
                const torch::Tensor& out, const torch::Tensor& dout, const torch::Tensor& dq,
                const torch::Tensor& dk, const torch::Tensor& dv) {
  layout.q = rows_of(q), layout.k = rows_of(k), layout.v = rows_of(v);
  layout.k_self = rows_of(k_self), layout.v_self = rows_of(v_self);
  layout.out = rows_of(out), layout.dout = rows_of(dout);
  layout.dq = rows_of(dq), layout.dk = rows_of(dk), layout.dv = rows_of(dv);
}

// ------------------------------------------------------------------------------ sliding window

class SlidingWindowFunction : public torch::autograd::Function<SlidingWindowFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q_in, const torch::Tensor& k_in,
                               const torch::Tensor& v_in, int64_t window) {
    const c10::cuda::CUDAGuard guard(q_in.device());
    auto q = kernel_readable(q_in), k = kernel_readable(k_in), v = kernel_readable(v_in);
    auto sh = make_shape(q, detail::Mask::sliding_window, q.size(2));
    sh.window = static_cast<int>(std::min<int64_t>(window, q.size(2) + 1));
    auto out = empty_heads_token_major(q);
    sh.layout.q = rows_of(q), sh.layout.k = sh.layout.k_self = rows_of(k), sh.layout.v = sh.layout.v_self = rows_of(v);
    sh.layout.out = rows_of(out);
    auto lse = torch::empty({q.size(0), q.size(1), q.size(2)}, q.options().dtype(torch::kFloat));
    detail::attention_forward(sh, q.data_ptr(), k.data_ptr(), v.data_ptr(), nullptr, nullptr, out.data_ptr(),
                              lse.data_ptr<float>(), current_stream());
    ctx->save_for_backward({q, k, v, out, lse});
    ctx->saved_data["window"] = sh.window;
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    auto &q = saved[0], &k = saved[1], &v = saved[2], &out = saved[3], &lse = saved[4];
    const c10::cuda::CUDAGuard guard(q.device());
    auto dout = kernel_readable(grads[0].to(q.scalar_type()));
    auto sh = make_shape(q, detail::Mask::sliding_window, q.size(2));
    sh.window = static_cast<int>(ctx->saved_data["window"].toInt());
    auto delta = torch::empty_like(lse);
    // Gradients in their inputs' layout (empty_like keeps the order of the strides).
    auto dq = kernel_readable(torch::empty_like(q)), dk = kernel_readable(torch::empty_like(k)),
         dv = kernel_readable(torch::empty_like(v));
    set_layout(sh.layout, q, k, v, k, v, out, dout, dq, dk, dv);
    detail::attention_backward(sh, q.data_ptr(), k.data_ptr(), v.data_ptr(), nullptr, nullptr, out.data_ptr(),
                               dout.data_ptr(), lse.data_ptr<float>(), delta.data_ptr<float>(), dq.data_ptr(),
                               dk.data_ptr(), dv.data_ptr(), nullptr, nullptr, current_stream());
    return {dq, dk, dv, torch::Tensor()};
  }
};

// ------------------------------------------------------------------------------ checkpoints

class CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q_in, const torch::Tensor& k_in,
                               const torch::Tensor& v_in, int64_t segment) {
    const c10::cuda::CUDAGuard guard(q_in.device());
    auto q = kernel_readable(q_in), k = kernel_readable(k_in), v = kernel_readable(v_in);
    const int64_t n = q.size(2), n_ckpt = n / segment;
    // Compressed keys and values: rows S-1, 2S-1, ..., n_ckpt·S-1.  [B, H, n_ckpt, d_h]
    auto kc = k.slice(2, segment - 1, n_ckpt * segment, segment).contiguous();
    auto vc = v.slice(2, segment - 1, n_ckpt * segment, segment).contiguous();
    auto sh = make_shape(q, detail::Mask::checkpoint, n_ckpt);
    sh.segment = static_cast<int>(segment);
    auto out = empty_heads_token_major(q);
    sh.layout.q = rows_of(q), sh.layout.k = rows_of(kc), sh.layout.v = rows_of(vc);
    sh.layout.k_self = rows_of(k), sh.layout.v_self = rows_of(v), sh.layout.out = rows_of(out);
    auto lse = torch::empty({q.size(0), q.size(1), n}, q.options().dtype(torch::kFloat));
    detail::attention_forward(sh, q.data_ptr(), kc.data_ptr(), vc.data_ptr(), k.data_ptr(), v.data_ptr(),
                              out.data_ptr(), lse.data_ptr<float>(), current_stream());
    ctx->save_for_backward({q, k, v, kc, vc, out, lse});
    ctx->saved_data["segment"] = segment;
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    auto &q = saved[0], &k = saved[1], &v = saved[2], &kc = saved[3], &vc = saved[4], &out = saved[5],
         &lse = saved[6];
    const c10::cuda::CUDAGuard guard(q.device());
    const int64_t segment = ctx->saved_data["segment"].toInt();
    auto dout = kernel_readable(grads[0].to(q.scalar_type()));
    auto sh = make_shape(q, detail::Mask::checkpoint, kc.size(2));
    sh.segment = static_cast<int>(segment);
    auto delta = torch::empty_like(lse);
    auto dkc = torch::empty(kc.sizes(), kc.options().dtype(torch::kFloat));
    auto dvc = torch::empty(vc.sizes(), vc.options().dtype(torch::kFloat));
    auto dq = kernel_readable(torch::empty_like(q)), dk = kernel_readable(torch::empty_like(k)),
         dv = kernel_readable(torch::empty_like(v));
    set_layout(sh.layout, q, kc, vc, k, v, out, dout, dq, dk, dv);
    detail::attention_backward(sh, q.data_ptr(), kc.data_ptr(), vc.data_ptr(), k.data_ptr(), v.data_ptr(),
                               out.data_ptr(), dout.data_ptr(), lse.data_ptr<float>(), delta.data_ptr<float>(),
                               dq.data_ptr(), dk.data_ptr(), dv.data_ptr(), dkc.data_ptr<float>(),
                               dvc.data_ptr<float>(), current_stream());
    return {dq, dk, dv, torch::Tensor()};
  }
};

}  // namespace

bool sliding_window_supported(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  return kernels_take(q, k, v);
}

bool checkpoint_supported(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  return kernels_take(q, k, v);
}

torch::Tensor sliding_window_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                       int64_t window) {
  check_qkv("sliding_window_attention", q, k, v);
  TORCH_CHECK(window >= 1, "attention/cuda/attention_binding.cpp: sliding_window_attention: window must be >= 1, got ",
              window);
  TORCH_CHECK(kernels_take(q, k, v), "attention/cuda/attention_binding.cpp: sliding_window_attention: the kernels take "
              "bf16/fp16 with head dim 64 or 128, got ", q.scalar_type(), " with head dim ", q.size(3),
              "; call mixlab::sliding_window_attention (attention/swa.h), which runs the reference for these");
  const auto dtype = compat::custom_op_dtype({q, k, v});
  if (sm90_attention_wanted(q.to(dtype), Sm90Scheme::window)) {
    record_implementation("sm90_attention", Implementation::kernel);
    return sm90_sliding_window_attention(q.to(dtype), k.to(dtype), v.to(dtype), window);
  }
  return SlidingWindowFunction::apply(q.to(dtype), k.to(dtype), v.to(dtype), window);
}

torch::Tensor checkpoint_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                   int64_t segment_size) {
  check_qkv("checkpoint_attention", q, k, v);
  TORCH_CHECK(segment_size >= 1, "attention/cuda/attention_binding.cpp: checkpoint_attention: segment_size must be >= 1, got ",
              segment_size);
  TORCH_CHECK(kernels_take(q, k, v), "attention/cuda/attention_binding.cpp: checkpoint_attention: the kernels take "
              "bf16/fp16 with head dim 64 or 128, got ", q.scalar_type(), " with head dim ", q.size(3),
              "; call mixlab::checkpoint_attention (attention/checkpoint_attention.h), which runs the reference for these");
  const auto dtype = compat::custom_op_dtype({q, k, v});
  if (sm90_attention_wanted(q.to(dtype), Sm90Scheme::checkpoint)) {
    record_implementation("sm90_attention", Implementation::kernel);
    return sm90_checkpoint_attention(q.to(dtype), k.to(dtype), v.to(dtype), segment_size);
  }
  return CheckpointFunction::apply(q.to(dtype), k.to(dtype), v.to(dtype), segment_size);
}

}  // namespace mixlab::cuda
