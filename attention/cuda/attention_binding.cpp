// Autograd wrappers of the attention kernels (flash_attention.cu): shape and dtype checks, the
// checkpoint gather, and the saved tensors.  bf16 and fp16 inputs with head dim 64 or 128 run the
// kernels; other dtypes or head dims take an exact LibTorch path over blocks of queries (float32
// arithmetic, autograd; memory O(N·W) for the window and O(N²/S) for checkpoints).

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <cmath>

#include "attention/cuda/kernels.h"
#include "attention/cuda/launch.h"

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
  TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(),
              "attention/cuda/attention_binding.cpp: ", fn, ": q, k, v must share one dtype");
}

bool kernel_path(const torch::Tensor& q) {
  return (q.scalar_type() == torch::kBFloat16 || q.scalar_type() == torch::kHalf) &&
         detail::attention_supported(static_cast<int>(q.size(3)));
}

constexpr int64_t kFallbackBlock = 512;  // queries per block of the LibTorch path

// Softmax attention of the queries [t0, t1) over the keys at `positions` (a [P] index), with
// allowed[t, p] given as a [t1 - t0, P] boolean; float32 arithmetic, output in q's dtype.
torch::Tensor attend_block(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t t0,
                           int64_t t1, const torch::Tensor& positions, const torch::Tensor& allowed) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  auto qb = q.slice(2, t0, t1).to(torch::kFloat);
  auto kb = k.index_select(2, positions).to(torch::kFloat), vb = v.index_select(2, positions).to(torch::kFloat);
  auto scores = torch::matmul(qb, kb.transpose(-2, -1)) * scale;  // [B, H, t1-t0, P]
  scores = scores.masked_fill(allowed.logical_not(), -std::numeric_limits<float>::infinity());
  return torch::matmul(torch::softmax(scores, -1), vb).to(q.scalar_type());
}

// Sliding window by blocks: the block [t0, t1) reads keys [t0-W+1, t1).
torch::Tensor window_by_blocks(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               int64_t window) {
  const int64_t n = q.size(2);
  auto index = q.options().dtype(torch::kLong);
  std::vector<torch::Tensor> outs;
  for (int64_t t0 = 0; t0 < n; t0 += kFallbackBlock) {
    const int64_t t1 = std::min(n, t0 + kFallbackBlock), s0 = std::max<int64_t>(0, t0 - window + 1);
    auto positions = torch::arange(s0, t1, index);
    auto t = torch::arange(t0, t1, index).unsqueeze(1), s = positions.unsqueeze(0);
    outs.push_back(attend_block(q, k, v, t0, t1, positions, (s <= t).logical_and(s > t - window)));
  }
  return torch::cat(outs, 2);
}

// Checkpoints by blocks: the block [t0, t1) reads itself and the checkpoints p = cS+S-1 < t1-1.
torch::Tensor checkpoints_by_blocks(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                    int64_t segment) {
  const int64_t n = q.size(2);
  auto index = q.options().dtype(torch::kLong);
  std::vector<torch::Tensor> outs;
  for (int64_t t0 = 0; t0 < n; t0 += kFallbackBlock) {
    const int64_t t1 = std::min(n, t0 + kFallbackBlock);
    auto ckpts = torch::arange(segment - 1, std::max(segment - 1, t1 - 1), segment, index);  // [C]
    auto rows = torch::arange(t0, t1, index);
    auto positions = torch::cat({ckpts, rows});
    auto t = rows.unsqueeze(1);
    // [b, C + b]: checkpoints strictly before t, then the self item.
    auto allowed = torch::cat({ckpts.unsqueeze(0) < t, rows.unsqueeze(0) == t}, 1);
    outs.push_back(attend_block(q, k, v, t0, t1, positions, allowed));
  }
  return torch::cat(outs, 2);
}

detail::AttentionShape make_shape(const torch::Tensor& q, detail::Mask mask, int64_t n_keys) {
  detail::AttentionShape sh;
  sh.element = q.scalar_type() == torch::kBFloat16 ? detail::Element::bf16 : detail::Element::fp16;
  sh.mask = mask;
  sh.batch_heads = static_cast<int>(q.size(0) * q.size(1));
  sh.n = static_cast<int>(q.size(2));
  sh.n_keys = static_cast<int>(n_keys);
  sh.head_dim = static_cast<int>(q.size(3));
  sh.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(q.size(3))));
  return sh;
}

void* current_stream() { return at::cuda::getCurrentCUDAStream().stream(); }

// ------------------------------------------------------------------------------ sliding window

class SlidingWindowFunction : public torch::autograd::Function<SlidingWindowFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q_in, const torch::Tensor& k_in,
                               const torch::Tensor& v_in, int64_t window) {
    const c10::cuda::CUDAGuard guard(q_in.device());
    auto q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
    auto sh = make_shape(q, detail::Mask::sliding_window, q.size(2));
    sh.window = static_cast<int>(std::min<int64_t>(window, q.size(2) + 1));
    auto out = torch::empty_like(q);
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
    auto dout = grads[0].to(q.scalar_type()).contiguous();
    auto sh = make_shape(q, detail::Mask::sliding_window, q.size(2));
    sh.window = static_cast<int>(ctx->saved_data["window"].toInt());
    auto delta = torch::empty_like(lse);
    auto dq = torch::empty_like(q), dk = torch::empty_like(k), dv = torch::empty_like(v);
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
    auto q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
    const int64_t n = q.size(2), n_ckpt = n / segment;
    // Compressed keys and values: rows S-1, 2S-1, ..., n_ckpt·S-1.  [B, H, n_ckpt, d_h]
    auto kc = k.slice(2, segment - 1, n_ckpt * segment, segment).contiguous();
    auto vc = v.slice(2, segment - 1, n_ckpt * segment, segment).contiguous();
    auto sh = make_shape(q, detail::Mask::checkpoint, n_ckpt);
    sh.segment = static_cast<int>(segment);
    auto out = torch::empty_like(q);
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
    auto dout = grads[0].to(q.scalar_type()).contiguous();
    auto sh = make_shape(q, detail::Mask::checkpoint, kc.size(2));
    sh.segment = static_cast<int>(segment);
    auto delta = torch::empty_like(lse);
    auto dkc = torch::empty(kc.sizes(), kc.options().dtype(torch::kFloat));
    auto dvc = torch::empty(vc.sizes(), vc.options().dtype(torch::kFloat));
    auto dq = torch::empty_like(q), dk = torch::empty_like(k), dv = torch::empty_like(v);
    detail::attention_backward(sh, q.data_ptr(), kc.data_ptr(), vc.data_ptr(), k.data_ptr(), v.data_ptr(),
                               out.data_ptr(), dout.data_ptr(), lse.data_ptr<float>(), delta.data_ptr<float>(),
                               dq.data_ptr(), dk.data_ptr(), dv.data_ptr(), dkc.data_ptr<float>(),
                               dvc.data_ptr<float>(), current_stream());
    return {dq, dk, dv, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor sliding_window_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                       int64_t window) {
  check_qkv("sliding_window_attention", q, k, v);
  TORCH_CHECK(window >= 1, "attention/cuda/attention_binding.cpp: sliding_window_attention: window must be >= 1, got ",
              window);
  if (!kernel_path(q)) return window_by_blocks(q, k, v, window);
  return SlidingWindowFunction::apply(q, k, v, window);
}

torch::Tensor checkpoint_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                   int64_t segment_size) {
  check_qkv("checkpoint_attention", q, k, v);
  TORCH_CHECK(segment_size >= 1, "attention/cuda/attention_binding.cpp: checkpoint_attention: segment_size must be >= 1, got ",
              segment_size);
  if (!kernel_path(q)) return checkpoints_by_blocks(q, k, v, segment_size);
  return CheckpointFunction::apply(q, k, v, segment_size);
}

}  // namespace mixlab::cuda
