// LibTorch entry of the wgmma tile (tile_products.h): checks the tensors, allocates S, O and R.

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "attention/cuda/kernels.h"
#include "attention/cuda/sm90/available.h"
#include "attention/cuda/sm90/tile_products.h"

namespace mixlab::cuda {

bool sm90_kernels_available() { return sm90::available(); }

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> sm90_tile_products(const torch::Tensor& q, const torch::Tensor& k,
                                                           const torch::Tensor& v) {
  for (const auto* t : {&q, &k, &v})
    TORCH_CHECK(t->is_cuda() && t->scalar_type() == torch::kBFloat16 && t->dim() == 2 && t->size(0) == 64 &&
                    t->size(1) == 64 && t->device() == q.device(),
                "attention/cuda/sm90/tile_products_binding.cpp: q, k, v must be [64, 64] bf16 on one CUDA device, got ",
                t->sizes(), " ", t->scalar_type(), " on ", t->device());
  const c10::cuda::CUDAGuard guard(q.device());
  auto q_c = q.contiguous(), k_c = k.contiguous(), v_c = v.contiguous();
  auto s = torch::empty({64, 64}, q.options().dtype(torch::kFloat32));
  auto o = torch::empty_like(s), r = torch::empty_like(s);
  sm90::tile_products(q_c.data_ptr(), k_c.data_ptr(), v_c.data_ptr(), s.data_ptr<float>(), o.data_ptr<float>(),
                      r.data_ptr<float>(), at::cuda::getCurrentCUDAStream().stream());
  return {s, o, r};
}

}  // namespace mixlab::cuda
