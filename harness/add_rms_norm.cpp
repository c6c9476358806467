#include "harness/add_rms_norm.h"

#include "core/compat.h"
#include "core/implementation.h"

#ifdef MIXLAB_WITH_CUDA
#include "harness/cuda/kernels.h"
#endif

namespace mixlab {

// h = x + r;  y = RMSNorm(h)·w  (the kernel where it takes the inputs, else the composed form).
std::pair<torch::Tensor, torch::Tensor> add_rms_norm(const torch::Tensor& x, const torch::Tensor& r,
                                                     const torch::Tensor& weight, double eps) {
#ifdef MIXLAB_WITH_CUDA
  if (cuda::add_rms_norm_supported(x, r, weight)) {
    record_implementation("add_rms_norm", Implementation::kernel);
    return cuda::add_rms_norm(x, r, weight, eps);
  }
#endif
  record_implementation("add_rms_norm", Implementation::reference);
  auto h = x + r;
  auto y = compat::rms_norm(h, weight, eps);
  return {h, y};
}

// y = RMSNorm(x)·w  (the kernel with no residual where it takes the inputs, else compat::rms_norm).
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
#ifdef MIXLAB_WITH_CUDA
  if (cuda::add_rms_norm_supported(x, x, weight)) {
    record_implementation("rms_norm", Implementation::kernel);
    return cuda::rms_norm(x, weight, eps);
  }
#endif
  record_implementation("rms_norm", Implementation::reference);
  return compat::rms_norm(x, weight, eps);
}

}  // namespace mixlab
