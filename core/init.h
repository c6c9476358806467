#pragma once
// Initialisation shared by every mixer: weights drawn N(0, std) with std = MixerContext::init_std
// (the model field `init_std`, which Hugging Face configs call `initializer_range`), biases zero.

#include <torch/torch.h>

namespace mixlab {

// W ~ N(0, std²) elementwise, b = 0 (when the Linear has a bias).
void normal_init(torch::nn::Linear linear, double std);

}  // namespace mixlab
