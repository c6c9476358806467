// LibTorch entries of the sm90 kernels (attention/cuda/sm90/): check the tensors, allocate the
// outputs; around the sliding-window backward, its D = Σ_d dO·O and its float32 dQ accumulator
// (scaled and cast here).  Declared in attention/cuda/kernels.h.

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <climits>
#include <cmath>
#include <vector>

#include "attention/cuda/kernels.h"
#include "attention/cuda/sm90/available.h"
#include "attention/cuda/sm90/checkpoint_forward.h"
#include "attention/cuda/sm90/tile_products.h"
#include "attention/cuda/sm90/window_backward.h"
#include "attention/cuda/sm90/window_forward.h"

namespace mixlab::cuda {

namespace {

void check_heads(const std::vector<const torch::Tensor*>& tensors, const torch::Tensor& q, int64_t window) {
  for (const auto* t : tensors)
    TORCH_CHECK(t->is_cuda() && t->scalar_type() == torch::kBFloat16 && t->dim() == 4 && t->size(3) == 64 &&
                    t->sizes() == q.sizes() && t->device() == q.device(),
                "attention/cuda/sm90/binding.cpp: q, k, v (o, dout) must be [B, H, N, 64] bf16 of one "
                "shape on one CUDA device, got ", t->sizes(), " ", t->scalar_type(), " on ", t->device());
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

std::pair<torch::Tensor, torch::Tensor> sm90_window_forward(const torch::Tensor& q, const torch::Tensor& k,
                                                            const torch::Tensor& v, int64_t window) {
  check_heads({&q, &k, &v}, q, window);
  const c10::cuda::CUDAGuard guard(q.device());
  auto q_c = q.contiguous(), k_c = k.contiguous(), v_c = v.contiguous();
  auto o = torch::empty_like(q_c);
  auto lse = torch::empty({q.size(0), q.size(1), q.size(2)}, q.options().dtype(torch::kFloat32));
  if (q.numel() == 0) return {o, lse};
  sm90::WindowForwardShape shape;
  shape.batch_heads = static_cast<int>(q.size(0) * q.size(1));
  shape.n = static_cast<int>(q.size(2));
  shape.window = static_cast<int>(std::min<int64_t>(window, q.size(2)));
  shape.scale = static_cast<float>(1.0 / std::sqrt(64.0));
  sm90::window_forward(shape, q_c.data_ptr(), k_c.data_ptr(), v_c.data_ptr(), o.data_ptr(), lse.data_ptr<float>(),
                       at::cuda::getCurrentCUDAStream().stream());
  return {o, lse};
}

std::pair<torch::Tensor, torch::Tensor> sm90_checkpoint_forward(const torch::Tensor& q, const torch::Tensor& k,
                                                                const torch::Tensor& v, int64_t segment) {
  check_heads({&q, &k, &v}, q, segment);
  const c10::cuda::CUDAGuard guard(q.device());
  auto q_c = q.contiguous(), k_c = k.contiguous(), v_c = v.contiguous();
  auto o = torch::empty_like(q_c);
  auto lse = torch::empty({q.size(0), q.size(1), q.size(2)}, q.options().dtype(torch::kFloat32));
  if (q.numel() == 0) return {o, lse};
  sm90::CheckpointForwardShape shape;
  shape.batch_heads = static_cast<int>(q.size(0) * q.size(1));
  shape.n = static_cast<int>(q.size(2));
  shape.segment = static_cast<int>(std::min<int64_t>(segment, q.size(2) + 1));  // S > N: no checkpoint either way
  shape.scale = static_cast<float>(1.0 / std::sqrt(64.0));
  sm90::checkpoint_forward(shape, q_c.data_ptr(), k_c.data_ptr(), v_c.data_ptr(), o.data_ptr(), lse.data_ptr<float>(),
                           at::cuda::getCurrentCUDAStream().stream());
  return {o, lse};
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> sm90_window_backward(
    const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& o,
    const torch::Tensor& dout, const torch::Tensor& lse, int64_t window) {
  check_heads({&q, &k, &v, &o, &dout}, q, window);
  TORCH_CHECK(lse.is_cuda() && lse.scalar_type() == torch::kFloat32 && lse.dim() == 3 && lse.size(0) == q.size(0) &&
                  lse.size(1) == q.size(1) && lse.size(2) == q.size(2),
              "attention/cuda/sm90/binding.cpp: lse must be [B, H, N] float32, got ", lse.sizes(), " ",
              lse.scalar_type());
  const c10::cuda::CUDAGuard guard(q.device());
  auto q_c = q.contiguous(), k_c = k.contiguous(), v_c = v.contiguous(), dout_c = dout.contiguous();
  auto lse_c = lse.contiguous();
  auto dk = torch::empty_like(k_c), dv = torch::empty_like(v_c);
  if (q.numel() == 0) return {torch::empty_like(q_c), dk, dv};
  const int64_t bh = q.size(0) * q.size(1), n = q.size(2), n_padded = (n + 63) / 64 * 64;
  auto delta = (dout_c.to(torch::kFloat32) * o.to(torch::kFloat32)).sum(-1).contiguous();  // D_t = Σ_d dO·O
  auto dq_accumulator = torch::zeros({bh, n_padded, 64}, q.options().dtype(torch::kFloat32));
  sm90::WindowBackwardShape shape;
  shape.batch_heads = static_cast<int>(bh);
  shape.n = static_cast<int>(n);
  shape.n_padded = static_cast<int>(n_padded);
  shape.window = static_cast<int>(std::min<int64_t>(window, n));
  shape.scale = static_cast<float>(1.0 / std::sqrt(64.0));
  sm90::window_backward(shape, q_c.data_ptr(), k_c.data_ptr(), v_c.data_ptr(), dout_c.data_ptr(),
                        lse_c.data_ptr<float>(), delta.data_ptr<float>(), dq_accumulator.data_ptr<float>(),
                        dk.data_ptr(), dv.data_ptr(), at::cuda::getCurrentCUDAStream().stream());
  auto dq = (dq_accumulator.narrow(1, 0, n) * shape.scale).to(torch::kBFloat16).view(q.sizes());
  return {dq, dk, dv};
}

}  // namespace mixlab::cuda
