// `gated_cnn`: MambaOut's Gated CNN block made causal (arXiv 2405.07992; docs/schemes.md).  A whole block:
// it replaces both the token mixer and the MLP (pattern `[gated_cnn]`, no separate `mlp`).
//
//   [g, i, c] = split( W_1 u_t + b_1 ,  sizes (h, h − c_ch, c_ch) )   W_1: d -> 2h, h = expansion·d
//   c'_t      = b_conv + Σ_{j<k} w_{:, j} ⊙ c_{t-(k-1-j)}             causal depthwise conv on c_ch channels
//   y_t       = W_2 ( GELU(g_t) ⊙ [i_t, c'_t] ) + b_2                 W_2: h -> d
//
// The original convolves a 7×7 window centred on each pixel; here the window is the last k tokens.
// The block's LayerNorm is the wrapper's RMSNorm and the residual is the wrapper's.  Defaults as
// MambaOut: expansion 8/3, kernel 7, conv_ratio 1 (c_ch = d), exact (erf) GELU.
// Params 3·h·d + 2h + d + c_ch·(k+1); FLOPs 6·N·h·d + 2·N·c_ch·k (+ ~12·N·h for biases, GELU and
// the gate product); state: the last k−1 conv inputs, (k−1)·c_ch.

#include "core/init.h"
#include "core/registry.h"
#include "mixers/causal_depthwise_conv.h"
#include "core/register_mixer.h"

namespace mixlab {
namespace {

class GatedCnnBlock : public TokenMixer {
 public:
  GatedCnnBlock(const MixerContext& context, const MixerParams& params)
      : d_model_(context.d_model),
        hidden_(static_cast<int64_t>(params.real("expansion") * context.d_model)),
        conv_channels_(static_cast<int64_t>(params.real("conv_ratio") * context.d_model)),
        kernel_(params.integer("kernel_size")) {
    if (conv_channels_ < 1 || conv_channels_ > hidden_)
      throw RegistryError("gated_cnn: conv channels conv_ratio·d_model = " + std::to_string(conv_channels_) +
                          " must lie in [1, hidden = expansion·d_model = " + std::to_string(hidden_) + "]");
    fc1_ = register_module("fc1", torch::nn::Linear(d_model_, 2 * hidden_));
    fc2_ = register_module("fc2", torch::nn::Linear(hidden_, d_model_));
    normal_init(fc1_, context.init_std);
    normal_init(fc2_, context.init_std);
    conv_weight_ = register_parameter("conv_weight",
                                      torch::randn({conv_channels_, 1, kernel_}) / std::sqrt(double(kernel_)));
    conv_bias_ = register_parameter("conv_bias", torch::zeros({conv_channels_}));
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    auto parts = fc1_->forward(x).split_with_sizes({hidden_, hidden_ - conv_channels_, conv_channels_}, -1);
    auto mixed = torch::cat({parts[1], causal_depthwise_conv(parts[2], conv_weight_, conv_bias_)}, -1);
    return fc2_->forward(torch::gelu(parts[0]) * mixed);
  }

  // matmul_flops: fc1 (2·N·d·2h) and fc2 (2·N·h·d); the depthwise conv is not a matrix product.
  Cost cost(const CostShape& shape) const override {
    const double tokens = static_cast<double>(shape.batch) * shape.seq_len;
    Cost cost;
    cost.matmul_flops = 6.0 * tokens * hidden_ * d_model_;
    cost.flops = cost.matmul_flops + 2.0 * tokens * conv_channels_ * kernel_ + 12.0 * tokens * hidden_;
    cost.state_bytes = static_cast<double>(shape.batch) * std::min<int64_t>(kernel_ - 1, shape.seq_len) *
                       conv_channels_ * shape.bytes_per_element;
    return cost;
  }

  bool has_step() const override { return true; }
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override {
    MixerState state;
    state.tensors["conv_history"] = torch::zeros({batch, conv_channels_, kernel_ - 1}, options);
    return state;
  }
  torch::Tensor step(const torch::Tensor& x_t, MixerState& state) override {
    auto parts = fc1_->forward(x_t).split_with_sizes({hidden_, hidden_ - conv_channels_, conv_channels_}, -1);
    auto conv = causal_depthwise_conv_step(state.tensors["conv_history"], parts[2], conv_weight_, conv_bias_);
    state.position += 1;
    return fc2_->forward(torch::gelu(parts[0]) * torch::cat({parts[1], conv}, -1));
  }

 private:
  int64_t d_model_, hidden_, conv_channels_, kernel_;
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
  torch::Tensor conv_weight_, conv_bias_;
};

}  // namespace

const RegisterMixer<GatedCnnBlock> kGatedCnnBlockRegistration(
    "gated_cnn",
    "MambaOut Gated CNN block (replaces mixer and MLP), causal depthwise conv",
    {
        ParamSpec::real("expansion", 8.0 / 3.0, "hidden width h as a multiple of d_model", 0.01, 64),
        ParamSpec::real("conv_ratio", 1.0, "convolved channels c_ch as a multiple of d_model (≤ expansion)", 0.0, 64),
        ParamSpec::integer("kernel_size", 7, "causal depthwise kernel length k", 1, 4096),
    },
    [](const MixerContext& context, const MixerParams& params) {
      const auto hidden = static_cast<int64_t>(params.real("expansion") * context.d_model);
      const auto conv = static_cast<int64_t>(params.real("conv_ratio") * context.d_model);
      if (conv < 1 || conv > hidden)
        throw RegistryError("gated_cnn: conv_ratio·d_model = " + std::to_string(conv) +
                            " must lie in [1, expansion·d_model = " + std::to_string(hidden) + "]");
    },
    MixerKind::Block);

}  // namespace mixlab
