// `ffn_attention`: MetaMixer's "FFNified attention" token mixer (Yun, Lee & Ro, "MetaMixer Is All
// You Need", arXiv 2406.02021, §3: FFNification), made causal for 1D language modelling.
//
// FFNification keeps attention's query-key-value shape but replaces the query-key product by a
// large-kernel depthwise convolution, softmax by GELU, and the coefficient-value product by a second
// depthwise convolution:
//
//   a_t = W_q u_t + b_q                                     W_q: d -> d             [B, N, d]
//   b_t = GELU( Σ_{i<k1} w1_{:, i} ⊙ a_{t-(k1-1-i)} + c1 )  causal depthwise conv  [B, N, d]
//   y_t = Σ_{i<k2} w2_{:, i} ⊙ b_{t-(k2-1-i)} + c2          causal depthwise conv  [B, N, d]
//
// (a_s = b_s = 0 for s < 0.)  What the causal 1D form changes from the paper's 2D mixer: both
// convolutions see the last k tokens only (left padding k−1 instead of a centred k×k window);
// BatchNorm after W_q is dropped (batch statistics mix positions; the block's pre-norm stands in);
// the RepVGG 7×7 + 3×3 training-time branches become one k-tap kernel (their inference-time fusion).
// The receptive field of one mixer is k1 + k2 − 1 tokens.  As in the paper there is no output
// projection.
//
// Cost per token: the projection 2·d² FLOPs (the only matrix product), the two convolutions
// 2·d·(k1 + k2), biases 3·d, GELU ~8·d.  Decoding state: the last k1−1 values of a and k2−1 of b.

#include "core/init.h"
#include "core/registry.h"
#include "mixers/causal_depthwise_conv.h"
#include "core/register_mixer.h"

namespace mixlab {
namespace {

class FfnAttention : public TokenMixer {
 public:
  FfnAttention(const MixerContext& context, const MixerParams& params)
      : d_model_(context.d_model),
        key_kernel_(params.integer("key_kernel")),
        value_kernel_(params.integer("value_kernel")) {
    query_ = register_module("q_proj", torch::nn::Linear(torch::nn::LinearOptions(d_model_, d_model_).bias(true)));
    normal_init(query_, context.init_std);
    // Depthwise kernels [d, 1, k]; index k−1 multiplies the current token.
    key_conv_ = register_parameter("key_conv_weight",
                                   torch::randn({d_model_, 1, key_kernel_}) / std::sqrt(double(key_kernel_)));
    key_bias_ = register_parameter("key_conv_bias", torch::zeros({d_model_}));
    value_conv_ = register_parameter("value_conv_weight",
                                     torch::randn({d_model_, 1, value_kernel_}) / std::sqrt(double(value_kernel_)));
    value_bias_ = register_parameter("value_conv_bias", torch::zeros({d_model_}));
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    auto a = query_->forward(x);                                             // [B, N, d]
    auto b = torch::gelu(causal_depthwise_conv(a, key_conv_, key_bias_));    // [B, N, d]
    return causal_depthwise_conv(b, value_conv_, value_bias_);
  }

  Cost cost(const CostShape& shape) const override {
    const double tokens = static_cast<double>(shape.batch) * shape.seq_len, d = d_model_;
    Cost cost;
    cost.matmul_flops = 2.0 * tokens * d * d;
    cost.flops = cost.matmul_flops + tokens * d * (2.0 * (key_kernel_ + value_kernel_) + 3.0 + 8.0);
    cost.state_bytes = static_cast<double>(shape.batch) * (key_kernel_ - 1 + value_kernel_ - 1) * d *
                       shape.bytes_per_element;
    return cost;
  }

  bool has_step() const override { return true; }
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override {
    MixerState state;
    state.tensors["key_conv_history"] = torch::zeros({batch, d_model_, key_kernel_ - 1}, options);
    state.tensors["value_conv_history"] = torch::zeros({batch, d_model_, value_kernel_ - 1}, options);
    return state;
  }
  torch::Tensor step(const torch::Tensor& x_t, MixerState& state) override {
    auto a = query_->forward(x_t);                                                              // [B, d]
    auto b = torch::gelu(causal_depthwise_conv_step(state.tensors["key_conv_history"], a, key_conv_, key_bias_));
    state.position += 1;
    return causal_depthwise_conv_step(state.tensors["value_conv_history"], b, value_conv_, value_bias_);
  }

 private:
  int64_t d_model_, key_kernel_, value_kernel_;
  torch::nn::Linear query_{nullptr};
  torch::Tensor key_conv_, key_bias_, value_conv_, value_bias_;
};

}  // namespace

const RegisterMixer<FfnAttention> kFfnAttentionRegistration(
    "ffn_attention",
    "MetaMixer FFNified attention made causal: pw -> causal dwconv -> GELU -> causal dwconv",
    {
        ParamSpec::integer("key_kernel", 7, "k1: causal depthwise kernel standing for the query-key product", 1, 4096),
        ParamSpec::integer("value_kernel", 7, "k2: causal depthwise kernel standing for the weights-value product",
                           1, 4096),
    });

}  // namespace mixlab
