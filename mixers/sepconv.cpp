// `sepconv`: ConvFormer's separable convolution mixer made causal (arXiv 2210.13452, §3; docs/schemes.md).
//
//   a   = StarReLU( W_1 u_t ),                 W_1: d -> E (E = expansion·d, default 2d), no bias
//   c_t = Σ_{i=0}^{k-1} w_{:, i} ⊙ a_{t-i}      causal depthwise conv, kernel k (default 7), no bias
//   y_t = W_2 c_t,                             W_2: E -> d, no bias
//   StarReLU(x) = s·relu(x)² + b               learnable scalars (init 0.8944, −0.4472 as in `mlp`)
//
// The original (MobileNetV2 inverted separable conv) pads the k×k window symmetrically; here the
// window is the last k tokens (left padding k−1).  Params 2·d·E + E·k + 2; FLOPs 4·N·d·E +
// 2·N·E·k (+ ~4·N·E for StarReLU); state: the last k−1 activations, (k−1)·E.

#include "core/init.h"
#include "core/registry.h"
#include "mixers/causal_depthwise_conv.h"
#include "core/register_mixer.h"

namespace mixlab {
namespace {

class SepConv : public TokenMixer {
 public:
  SepConv(const MixerContext& context, const MixerParams& params)
      : d_model_(context.d_model),
        width_(static_cast<int64_t>(std::llround(params.real("expansion") * context.d_model))),
        kernel_(params.integer("kernel_size")) {
    pwconv1_ = register_module("pwconv1", torch::nn::Linear(torch::nn::LinearOptions(d_model_, width_).bias(false)));
    pwconv2_ = register_module("pwconv2", torch::nn::Linear(torch::nn::LinearOptions(width_, d_model_).bias(false)));
    normal_init(pwconv1_, context.init_std);
    normal_init(pwconv2_, context.init_std);
    // Depthwise kernel [E, 1, k]; index k−1 multiplies the current token, index 0 the oldest.
    dwconv_ = register_parameter("dwconv_weight", torch::randn({width_, 1, kernel_}) / std::sqrt(double(kernel_)));
    star_scale_ = register_parameter("star_scale", torch::full({1}, 0.8944));
    star_bias_ = register_parameter("star_bias", torch::full({1}, -0.4472));
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    auto a = activation(pwconv1_->forward(x));                          // [B, N, E]
    return pwconv2_->forward(causal_depthwise_conv(a, dwconv_));
  }

  // matmul_flops: the two pointwise products, 4·N·d·E (the depthwise conv is not a matrix product).
  Cost cost(const CostShape& shape) const override {
    const double tokens = static_cast<double>(shape.batch) * shape.seq_len;
    Cost cost;
    cost.matmul_flops = 4.0 * tokens * d_model_ * width_;
    cost.flops = cost.matmul_flops + 2.0 * tokens * width_ * kernel_ + 4.0 * tokens * width_;
    cost.state_bytes = static_cast<double>(shape.batch) * std::min<int64_t>(kernel_ - 1, shape.seq_len) *
                       width_ * shape.bytes_per_element;
    return cost;
  }

  bool has_step() const override { return true; }
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override {
    MixerState state;
    state.tensors["conv_history"] = torch::zeros({batch, width_, kernel_ - 1}, options);  // last k−1 activations
    return state;
  }
  torch::Tensor step(const torch::Tensor& x_t, MixerState& state) override {
    auto c = causal_depthwise_conv_step(state.tensors["conv_history"], activation(pwconv1_->forward(x_t)),
                                        dwconv_);  // [B, E]
    state.position += 1;
    return pwconv2_->forward(c);
  }

 private:
  torch::Tensor activation(const torch::Tensor& x) const { return star_scale_ * torch::relu(x).square() + star_bias_; }

  int64_t d_model_, width_, kernel_;
  torch::nn::Linear pwconv1_{nullptr}, pwconv2_{nullptr};
  torch::Tensor dwconv_, star_scale_, star_bias_;
};

}  // namespace

const RegisterMixer<SepConv> kSepConvRegistration(
    "sepconv",
    "ConvFormer SepConv made causal: pw -> StarReLU -> causal depthwise conv -> pw",
    {
        ParamSpec::real("expansion", 2.0, "inner width E as a multiple of d_model", 0.01, 64),
        ParamSpec::integer("kernel_size", 7, "causal depthwise kernel length k", 1, 4096),
    });

}  // namespace mixlab
