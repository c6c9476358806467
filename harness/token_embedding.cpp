#include "harness/token_embedding.h"

#include "core/implementation.h"

#ifdef MIXLAB_WITH_CUDA
#include "harness/cuda/kernels.h"
#endif

namespace mixlab {

torch::Tensor token_embedding(const torch::Tensor& weight, const torch::Tensor& tokens) {
#ifdef MIXLAB_WITH_CUDA
  if (cuda::token_embedding_supported(weight, tokens)) {
    record_implementation("token_embedding", Implementation::kernel);
    return cuda::token_embedding(weight, tokens);
  }
#endif
  record_implementation("token_embedding", Implementation::reference);
  return torch::embedding(weight, tokens);
}

}  // namespace mixlab
