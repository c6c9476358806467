#include "attention/rope.h"

#include "core/implementation.h"

#ifdef MIXLAB_WITH_CUDA
#include "attention/cuda/kernels.h"
#endif

namespace mixlab {

// inv_freq_i = θ^(-2i/d_h); angle(p, i) = p · inv_freq_i; tables [N, d_h] = [angles, angles].
std::pair<torch::Tensor, torch::Tensor> rope_tables(const torch::Tensor& positions, int64_t head_dim,
                                                    double theta, const torch::TensorOptions& options) {
  TORCH_CHECK(head_dim % 2 == 0, "RoPE needs an even head dimension, got ", head_dim);
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(positions.device());
  auto exponent = torch::arange(0, head_dim, 2, f64) / static_cast<double>(head_dim);  // [d_h/2]
  auto inv_freq = torch::pow(theta, -exponent);                                        // [d_h/2]
  auto angles = positions.to(torch::kFloat64).unsqueeze(1) * inv_freq.unsqueeze(0);   // [N, d_h/2]
  auto full = torch::cat({angles, angles}, 1);                                         // [N, d_h]
  return {full.cos().to(options), full.sin().to(options)};
}

// y = x·cos + rotate_half(x)·sin, rotate_half([a, b]) = [-b, a].  x: [..., N, d_h]; cos, sin: [N, d_h].
// On CUDA one fused kernel (attention/cuda/rope.cu) where it takes the inputs; otherwise, and on
// the CPU, the composed reference below.
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
#ifdef MIXLAB_WITH_CUDA
  if (cuda::rope_supported(x, cos, sin)) {
    record_implementation("apply_rope", Implementation::kernel);
    return cuda::apply_rope(x, cos, sin);
  }
#endif
  record_implementation("apply_rope", Implementation::reference);
  const int64_t half = x.size(-1) / 2;
  auto first = x.narrow(-1, 0, half);
  auto second = x.narrow(-1, half, half);
  auto rotated = torch::cat({-second, first}, -1);
  return x * cos + rotated * sin;
}

}  // namespace mixlab
