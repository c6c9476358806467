#include "harness/linear_add_rms_norm.h"

#include "core/implementation.h"
#include "core/skinny_linear.h"
#include "harness/add_rms_norm.h"

#include <cstdlib>
#include <string>

#ifdef MIXLAB_WITH_CUDA
#include "harness/cuda/kernels.h"
#endif

namespace mixlab {
#ifdef MIXLAB_WITH_CUDA
namespace {

// MIXLAB_FUSED_OUTPUT_NORM=0 runs the two ops in turn everywhere (read once; the A/B of
// bench/decode_issue13.sh).
bool fusion_enabled() {
  static const bool enabled = [] {
    const char* value = std::getenv("MIXLAB_FUSED_OUTPUT_NORM");
    return value == nullptr || std::string(value) != "0";
  }();
  return enabled;
}

}  // namespace
#endif

std::pair<torch::Tensor, torch::Tensor> linear_add_rms_norm(const torch::Tensor& x, const torch::Tensor& weight,
                                                            const torch::Tensor& bias, const torch::Tensor& residual,
                                                            const torch::Tensor& norm_weight, double eps) {
#ifdef MIXLAB_WITH_CUDA
  if (fusion_enabled() && cuda::linear_add_rms_norm_supported(x, weight, bias, residual, norm_weight)) {
    record_implementation("linear_add_rms_norm", Implementation::kernel);
    return cuda::linear_add_rms_norm(x, weight, bias, residual, norm_weight, eps);
  }
#endif
  record_implementation("linear_add_rms_norm", Implementation::reference);
  return add_rms_norm(residual, skinny_linear(x, weight, bias), norm_weight, eps);
}

}  // namespace mixlab
