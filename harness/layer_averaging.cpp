#include "harness/layer_averaging.h"

namespace mixlab {

LayerAveragingImpl::LayerAveragingImpl(int64_t n_sublayers) {
  for (int64_t l = 1; l <= n_sublayers; ++l) {
    auto alpha = torch::zeros({l + 1});
    alpha[l] = 1.0;
    alphas_.push_back(register_parameter("alpha_" + std::to_string(l), alpha));
  }
}

torch::Tensor LayerAveragingImpl::forward(const std::vector<torch::Tensor>& history) {
  const auto& alpha = alphas_.at(history.size() - 2);
  auto average = history[0] * alpha[0].to(history[0].scalar_type());
  for (size_t i = 1; i < history.size(); ++i) average = average + history[i] * alpha[i].to(history[i].scalar_type());
  return average;
}

double LayerAveragingImpl::flops(double tokens, int64_t d_model) const {
  double total = 0;
  for (size_t l = 1; l <= alphas_.size(); ++l) total += 2.0 * static_cast<double>(l + 1) * tokens * d_model;
  return total;
}

}  // namespace mixlab
