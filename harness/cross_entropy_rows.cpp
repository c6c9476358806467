#include "harness/cross_entropy_rows.h"

#include "core/implementation.h"

#ifdef MIXLAB_WITH_CUDA
#include "harness/cuda/kernels.h"
#endif

namespace mixlab {

namespace reference {

namespace {
// Float32 for the statistics, unless the logits are float64.
torch::ScalarType statistics_type(const torch::Tensor& logits) {
  return logits.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}
}  // namespace

std::pair<torch::Tensor, torch::Tensor> cross_entropy_rows_forward(const torch::Tensor& logits,
                                                                   const torch::Tensor& targets) {
  const auto wide = logits.to(statistics_type(logits));                      // [M, V]
  return {torch::logsumexp(wide, 1), wide.gather(1, targets.unsqueeze(1)).squeeze(1)};
}

torch::Tensor cross_entropy_rows_backward(const torch::Tensor& logits, const torch::Tensor& targets,
                                          const torch::Tensor& lse, const torch::Tensor& scale) {
  auto p = logits.to(lse.scalar_type());                                     // [M, V]
  p.sub_(lse.unsqueeze(1)).exp_();                                           // softmax
  p.scatter_add_(1, targets.unsqueeze(1), -torch::ones({p.size(0), 1}, p.options()));  // − onehot(y)
  p.mul_(scale.to(p.scalar_type()));
  return p.to(logits.scalar_type());
}

}  // namespace reference

std::pair<torch::Tensor, torch::Tensor> cross_entropy_rows_forward(const torch::Tensor& logits,
                                                                   const torch::Tensor& targets) {
#ifdef MIXLAB_WITH_CUDA
  if (cuda::cross_entropy_rows_supported(logits, targets)) {
    record_implementation("cross_entropy_rows", Implementation::kernel);
    return cuda::cross_entropy_rows_forward(logits, targets);
  }
#endif
  record_implementation("cross_entropy_rows", Implementation::reference);
  return reference::cross_entropy_rows_forward(logits, targets);
}

torch::Tensor cross_entropy_rows_backward(torch::Tensor logits, const torch::Tensor& targets, const torch::Tensor& lse,
                                          const torch::Tensor& scale) {
#ifdef MIXLAB_WITH_CUDA
  if (cuda::cross_entropy_rows_supported(logits, targets) && lse.scalar_type() == torch::kFloat32) {
    record_implementation("cross_entropy_rows", Implementation::kernel);
    return cuda::cross_entropy_rows_backward_(logits, targets, lse, scale);
  }
#endif
  record_implementation("cross_entropy_rows", Implementation::reference);
  return reference::cross_entropy_rows_backward(logits, targets, lse, scale);
}

}  // namespace mixlab
