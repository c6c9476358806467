#include "core/init.h"

namespace mixlab {

void normal_init(torch::nn::Linear linear, double std) {
  torch::NoGradGuard no_grad;
  linear->weight.normal_(0.0, std);
  if (linear->bias.defined()) linear->bias.zero_();
}

}  // namespace mixlab
