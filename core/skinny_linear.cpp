#include "core/skinny_linear.h"

#include "core/implementation.h"

#ifdef MIXLAB_WITH_CUDA
#include "core/cuda/kernels.h"
#endif

namespace mixlab {

torch::Tensor skinny_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                            const InputNorm& norm) {
#ifdef MIXLAB_WITH_CUDA
  if (cuda::skinny_linear_supported(x, weight, bias) && cuda::skinny_norm_supported(x, norm)) {
    record_implementation("skinny_linear", Implementation::kernel);
    return cuda::skinny_linear(x, weight, bias, norm);
  }
#endif
  record_implementation("skinny_linear", Implementation::reference);
  return at::linear(norm.apply(x), weight, bias);
}

torch::Tensor skinny_linear_add(const torch::Tensor& residual, const torch::Tensor& x, const torch::Tensor& weight,
                                const torch::Tensor& bias) {
#ifdef MIXLAB_WITH_CUDA
  if (cuda::skinny_linear_add_supported(residual, x, weight, bias)) {
    record_implementation("skinny_linear_add", Implementation::kernel);
    return cuda::skinny_linear_add(residual, x, weight, bias);
  }
#endif
  record_implementation("skinny_linear_add", Implementation::reference);
  return residual + skinny_linear(x, weight, bias);
}

}  // namespace mixlab
