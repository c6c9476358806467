#include "attention/rope.h"

namespace mixlab {

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

torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  auto first = x.narrow(-1, 0, half);
  auto second = x.narrow(-1, half, half);
  auto rotated = torch::cat({-second, first}, -1);
  return x * cos + rotated * sin;
}

}  // namespace mixlab
