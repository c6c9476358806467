// LibTorch entry of the sm90 sliding-window forward (window_forward.h): checks the tensors,
// allocates o and lse.

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <climits>
#include <cmath>

#include "attention/cuda/kernels.h"
#include "attention/cuda/sm90/window_forward.h"

namespace mixlab::cuda {

std::pair<torch::Tensor, torch::Tensor> sm90_window_forward(const torch::Tensor& q, const torch::Tensor& k,
                                                            const torch::Tensor& v, int64_t window) {
  for (const auto* t : {&q, &k, &v})
    TORCH_CHECK(t->is_cuda() && t->scalar_type() == torch::kBFloat16 && t->dim() == 4 && t->size(3) == 64 &&
                    t->sizes() == q.sizes() && t->device() == q.device(),
                "attention/cuda/sm90/window_forward_binding.cpp: q, k, v must be [B, H, N, 64] bf16 of one shape "
                "on one CUDA device, got ", t->sizes(), " ", t->scalar_type(), " on ", t->device());
  TORCH_CHECK(window >= 1, "attention/cuda/sm90/window_forward_binding.cpp: window ", window, " (valid: >= 1)");
  TORCH_CHECK(q.size(0) * q.size(1) <= INT_MAX / 2 && q.size(2) <= INT_MAX / 2,
              "attention/cuda/sm90/window_forward_binding.cpp: too large: ", q.sizes());
  const c10::cuda::CUDAGuard guard(q.device());
  auto q_c = q.contiguous(), k_c = k.contiguous(), v_c = v.contiguous();
  auto o = torch::empty_like(q_c);
  auto lse = torch::empty({q.size(0), q.size(1), q.size(2)}, q.options().dtype(torch::kFloat32));
  sm90::WindowForwardShape shape;
  shape.batch_heads = static_cast<int>(q.size(0) * q.size(1));
  shape.n = static_cast<int>(q.size(2));
  shape.window = static_cast<int>(std::min<int64_t>(window, q.size(2)));
  shape.scale = static_cast<float>(1.0 / std::sqrt(64.0));
  if (q.numel() == 0) return {o, lse};
  sm90::window_forward(shape, q_c.data_ptr(), k_c.data_ptr(), v_c.data_ptr(), o.data_ptr(), lse.data_ptr<float>(),
                       at::cuda::getCurrentCUDAStream().stream());
  return {o, lse};
}

}  // namespace mixlab::cuda
