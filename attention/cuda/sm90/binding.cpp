// LibTorch entries of the sm90 kernels (attention/cuda/sm90/): check the tensors, allocate the
// outputs and the backwards' scratch (D = Σ_d dO·O and the float32 dQ accumulator, made by
// backward_rows.h's pass; SCOUT's compact checkpoint gradients).  Declared in attention/cuda/kernels.h.

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cmath>
#include <vector>

#include "attention/cuda/kernels.h"
#include "attention/cuda/sm90/available.h"
#include "attention/cuda/sm90/backward_rows.h"
#include "attention/cuda/sm90/checkpoint_backward.h"
#include "attention/cuda/sm90/checkpoint_forward.h"
#include "attention/cuda/sm90/tile_products.h"
#include "attention/cuda/sm90/window_backward.h"
#include "attention/cuda/sm90/window_forward.h"

namespace mixlab::cuda {

namespace {

const std::vector<int64_t> kHeadDims{64, 128};  // what the sm90 kernels take, forwards and backwards

// head_dims: the head dims the kernels take (kHeadDims).
void check_heads(const std::vector<const torch::Tensor*>& tensors, const torch::Tensor& q, int64_t window,
                 const std::vector<int64_t>& head_dims) {
  for (const auto* t : tensors)
    TORCH_CHECK(t->is_cuda() && t->scalar_type() == torch::kBFloat16 && t->dim() == 4 &&
                    std::find(head_dims.begin(), head_dims.end(), t->size(3)) != head_dims.end() &&
                    t->sizes() == q.sizes() && t->device() == q.device(),
                "attention/cuda/sm90/binding.cpp: q, k, v (o, dout) must be [B, H, N, d] bf16 of one shape on one "
                "CUDA device with the head dim d (size 3) in ", c10::IntArrayRef(head_dims), ", got ", t->sizes(), " ",
                t->scalar_type(), " on ", t->device());
  TORCH_CHECK(window >= 1, "attention/cuda/sm90/binding.cpp: window or segment size ", window, " (valid: >= 1)");
  TORCH_CHECK(q.size(0) * q.size(1) <= INT_MAX / 2 && q.size(2) <= INT_MAX / 2,
              "attention/cuda/sm90/binding.cpp: too large: ", q.sizes());
}

}  // namespace

bool sm90_kernels_available() { return sm90::available(); }

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> sm90_tile_products(const torch::Tensor& q, const torch::Tensor& k,
                                                           const torch::Tensor& v) {
  for (const auto* t : {&q, &k, &v})
    TORCH_CHECK(t->is_cuda() && t->scalar_type() == torch::kBFloat16 && t->dim() == 2 && t->size(0) == 64 &&
                    t->size(1) == 64 && t->device() == q.device(),
                "attention/cuda/sm90/binding.cpp: q, k, v must be [64, 64] bf16 on one CUDA device, got ",
                t->sizes(), " ", t->scalar_type(), " on ", t->device());
  const c10::cuda::CUDAGuard guard(q.device());
  auto q_c = q.contiguous(), k_c = k.contiguous(), v_c = v.contiguous();
  auto s = torch::empty({64, 64}, q.options().dtype(torch::kFloat32));
  auto o = torch::empty_like(s), r = torch::empty_like(s);
  sm90::tile_products(q_c.data_ptr(), k_c.data_ptr(), v_c.data_ptr(), s.data_ptr<float>(), o.data_ptr<float>(),
                      r.data_ptr<float>(), at::cuda::getCurrentCUDAStream().stream());
  return {s, o, r};
}

namespace {

// The forwards' common part: checks, contiguous inputs, o [B, H, N, d] and lse [B, H, N], and the
// kernel through run(batch_heads, n, head_dim, q, k, v, o, lse, stream).
template <class Run>
std::pair<torch::Tensor, torch::Tensor> forward_entry(const torch::Tensor& q, const torch::Tensor& k,
                                                      const torch::Tensor& v, int64_t window_or_segment, Run run) {
  check_heads({&q, &k, &v}, q, window_or_segment, kHeadDims);
  const c10::cuda::CUDAGuard guard(q.device());
  auto q_c = q.contiguous(), k_c = k.contiguous(), v_c = v.contiguous();
  auto o = torch::empty_like(q_c);
  auto lse = torch::empty({q.size(0), q.size(1), q.size(2)}, q.options().dtype(torch::kFloat32));
  if (q.numel() == 0) return {o, lse};
  run(static_cast<int>(q.size(0) * q.size(1)), static_cast<int>(q.size(2)), static_cast<int>(q.size(3)),
      q_c.data_ptr(), k_c.data_ptr(), v_c.data_ptr(), o.data_ptr(), lse.data_ptr<float>(),
      at::cuda::getCurrentCUDAStream().stream());
  return {o, lse};
}

float scale_of(int64_t head_dim) { return static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim))); }

}  // namespace

std::pair<torch::Tensor, torch::Tensor> sm90_window_forward(const torch::Tensor& q, const torch::Tensor& k,
                                                            const torch::Tensor& v, int64_t window) {
  return forward_entry(q, k, v, window, [&](int batch_heads, int n, int head_dim, auto... pointers) {
    sm90::WindowForwardShape shape;
    shape.batch_heads = batch_heads;
    shape.n = n;
    shape.window = static_cast<int>(std::min<int64_t>(window, n));
    shape.head_dim = head_dim;
    shape.scale = scale_of(head_dim);
    sm90::window_forward(shape, pointers...);
  });
}

std::pair<torch::Tensor, torch::Tensor> sm90_checkpoint_forward(const torch::Tensor& q, const torch::Tensor& k,
                                                                const torch::Tensor& v, int64_t segment) {
  return forward_entry(q, k, v, segment, [&](int batch_heads, int n, int head_dim, auto... pointers) {
    sm90::CheckpointForwardShape shape;
    shape.batch_heads = batch_heads;
    shape.n = n;
    shape.segment = static_cast<int>(std::min<int64_t>(segment, n + 1));  // S > N: no checkpoint either way
    shape.head_dim = head_dim;
    shape.scale = scale_of(head_dim);
    sm90::checkpoint_forward(shape, pointers...);
  });
}

namespace {

// The backwards' common checks and scratch: D_t = Σ_d dO_td O_td [B·H, N] and a zeroed float32 dQ
// accumulator [B·H, d / 64, N rounded up to 64, 64] (window_backward.h), both made by one pass
// over dO and O (backward_rows.h).
struct BackwardScratch {
  torch::Tensor q, k, v, dout, lse, delta, dq_accumulator;
  int64_t batch_heads = 0, n = 0, n_padded = 0, head_dim = 0;
};
// t, contiguous and 16-byte aligned (a view into another tensor may start anywhere).
torch::Tensor contiguous_aligned(const torch::Tensor& t) {
  auto c = t.contiguous();
  return reinterpret_cast<uintptr_t>(c.data_ptr()) % 16 == 0 ? c : c.clone();
}
BackwardScratch backward_scratch(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                 const torch::Tensor& o, const torch::Tensor& dout, const torch::Tensor& lse,
                                 int64_t window_or_segment) {
  check_heads({&q, &k, &v, &o, &dout}, q, window_or_segment, kHeadDims);
  TORCH_CHECK(lse.is_cuda() && lse.scalar_type() == torch::kFloat32 && lse.dim() == 3 && lse.size(0) == q.size(0) &&
                  lse.size(1) == q.size(1) && lse.size(2) == q.size(2),
              "attention/cuda/sm90/binding.cpp: lse must be [B, H, N] float32, got ", lse.sizes(), " ",
              lse.scalar_type());
  BackwardScratch s;
  s.q = q.contiguous(); s.k = k.contiguous(); s.v = v.contiguous(); s.dout = contiguous_aligned(dout);
  s.lse = lse.contiguous();
  s.batch_heads = q.size(0) * q.size(1);
  s.n = q.size(2);
  s.n_padded = (s.n + 63) / 64 * 64;
  s.head_dim = q.size(3);
  s.delta = torch::empty({s.batch_heads, s.n}, q.options().dtype(torch::kFloat32));
  s.dq_accumulator =
      torch::empty({s.batch_heads, s.head_dim / 64, s.n_padded, 64}, q.options().dtype(torch::kFloat32));
  if (q.numel() > 0)
    sm90::backward_prologue(static_cast<int>(s.batch_heads), static_cast<int>(s.n), static_cast<int>(s.n_padded),
                            static_cast<int>(s.head_dim), s.dout.data_ptr(), contiguous_aligned(o).data_ptr(),
                            s.delta.data_ptr<float>(), s.dq_accumulator.data_ptr<float>(),
                            at::cuda::getCurrentCUDAStream().stream());
  return s;
}

}  // namespace

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> sm90_checkpoint_backward(
    const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& o,
    const torch::Tensor& dout, const torch::Tensor& lse, int64_t segment) {
  const c10::cuda::CUDAGuard guard(q.device());
  auto s = backward_scratch(q, k, v, o, dout, lse, segment);
  auto dq = torch::empty_like(s.q), dk = torch::empty_like(s.k), dv = torch::empty_like(s.v);
  if (q.numel() == 0) return {dq, dk, dv};
  sm90::CheckpointBackwardShape shape;
  shape.batch_heads = static_cast<int>(s.batch_heads);
  shape.n = static_cast<int>(s.n);
  shape.n_padded = static_cast<int>(s.n_padded);
  shape.segment = static_cast<int>(std::min<int64_t>(segment, s.n + 1));  // S > N: no checkpoint either way
  shape.checkpoints = shape.n / shape.segment;
  shape.c_padded = (shape.checkpoints + 63) / 64 * 64;
  shape.head_dim = static_cast<int>(s.head_dim);
  shape.scale = scale_of(s.head_dim);
  auto compact = q.options().dtype(torch::kFloat32);
  auto checkpoint_dk = torch::empty({s.batch_heads, std::max(shape.c_padded, 64), s.head_dim}, compact);
  auto checkpoint_dv = torch::empty_like(checkpoint_dk);
  sm90::checkpoint_backward(shape, s.q.data_ptr(), s.k.data_ptr(), s.v.data_ptr(), s.dout.data_ptr(),
                            s.lse.data_ptr<float>(), s.delta.data_ptr<float>(), s.dq_accumulator.data_ptr<float>(),
                            checkpoint_dk.data_ptr<float>(), checkpoint_dv.data_ptr<float>(), dq.data_ptr(),
                            dk.data_ptr(), dv.data_ptr(), at::cuda::getCurrentCUDAStream().stream());
  return {dq, dk, dv};
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> sm90_window_backward(
    const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& o,
    const torch::Tensor& dout, const torch::Tensor& lse, int64_t window) {
  const c10::cuda::CUDAGuard guard(q.device());
  auto s = backward_scratch(q, k, v, o, dout, lse, window);
  auto dk = torch::empty_like(s.k), dv = torch::empty_like(s.v);
  if (q.numel() == 0) return {torch::empty_like(s.q), dk, dv};
  sm90::WindowBackwardShape shape;
  shape.batch_heads = static_cast<int>(s.batch_heads);
  shape.n = static_cast<int>(s.n);
  shape.n_padded = static_cast<int>(s.n_padded);
  shape.window = static_cast<int>(std::min<int64_t>(window, s.n));
  shape.head_dim = static_cast<int>(s.head_dim);
  shape.scale = scale_of(s.head_dim);
  sm90::window_backward(shape, s.q.data_ptr(), s.k.data_ptr(), s.v.data_ptr(), s.dout.data_ptr(),
                        s.lse.data_ptr<float>(), s.delta.data_ptr<float>(), s.dq_accumulator.data_ptr<float>(),
                        dk.data_ptr(), dv.data_ptr(), at::cuda::getCurrentCUDAStream().stream());
  auto dq = torch::empty_like(s.q);
  sm90::dq_from_accumulator(shape.batch_heads, shape.n, shape.n_padded, shape.head_dim, shape.scale,
                            s.dq_accumulator.data_ptr<float>(), dq.data_ptr(), at::cuda::getCurrentCUDAStream().stream());
  return {dq, dk, dv};
}

}  // namespace mixlab::cuda
