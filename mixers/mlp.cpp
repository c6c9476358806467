// `mlp`: the SwiGLU channel mixer (LLaMA / Qwen2 / fla GatedMLP with swish).
//
//   y_t = W_down ( act(W_gate u_t) ⊙ (W_up u_t) ),   act = SiLU (SwiGLU) or StarReLU
//   StarReLU(x) = s·relu(x)² + b   with learnable scalars s, b (MetaFormer, init s=0.8944, b=-0.4472)
//
// Position-wise: causal by construction, no inference state.  Weight names follow HF Llama
// (gate_proj, up_proj, down_proj; [out, in]).

#include "core/init.h"
#include "core/register_mixer.h"
#include "core/registry.h"
#include "core/skinny_linear.h"
#include "mixers/swiglu.h"

#include <cmath>

namespace mixlab {
namespace {

int64_t hidden_width(const MixerContext& context, const MixerParams& params) {
  const int64_t hidden = params.integer("hidden");
  if (hidden > 0) return hidden;
  const double raw = params.real("expand") * static_cast<double>(context.d_model);
  return ((static_cast<int64_t>(std::ceil(raw)) + 7) / 8) * 8;  // round up to a multiple of 8
}

class GatedMlp : public TokenMixer {
 public:
  GatedMlp(const MixerContext& context, const MixerParams& params)
      : d_model_(context.d_model), hidden_(hidden_width(context, params)),
        star_relu_(params.text("activation") == "starrelu") {
    auto make = [&](const char* name, int64_t in, int64_t out) {
      auto linear = register_module(name, torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)));
      normal_init(linear, context.init_std);
      return linear;
    };
    gate_proj_ = make("gate_proj", d_model_, hidden_);
    up_proj_ = make("up_proj", d_model_, hidden_);
    down_proj_ = make("down_proj", hidden_, d_model_);
    if (star_relu_) {
      star_scale_ = register_parameter("star_scale", torch::full({1}, 0.8944));
      star_bias_ = register_parameter("star_bias", torch::full({1}, -0.4472));
    }
  }

  torch::Tensor forward(const torch::Tensor& x) override { return down_proj_(gated(gate_proj_(x), up_proj_(x))); }

  // Three products of d × hidden: 6·N·d·hidden; plus ~5 FLOPs per hidden element for the
  // activation and the gate product.
  Cost cost(const CostShape& shape) const override {
    const double tokens = static_cast<double>(shape.batch) * shape.seq_len;
    Cost cost;
    cost.matmul_flops = 6.0 * tokens * d_model_ * hidden_;
    cost.flops = cost.matmul_flops + 5.0 * tokens * hidden_;
    return cost;
  }

  bool has_step() const override { return true; }
  MixerState initial_state(int64_t, const torch::TensorOptions&) const override { return {}; }
  torch::Tensor step(const torch::Tensor& x_t, MixerState& state) override {
    state.position += 1;
    return forward(x_t);
  }
  // Stateless.  The session's one constant is W_gate and W_up in one matrix, [2·hidden, d], so a
  // step makes both products at once: for SwiGLU their rows paired in blocks of 8
  // (interleave_gate_up), the layout in which the gate is the product's store (swiglu_linear: one
  // kernel on CUDA); for StarReLU, or a hidden width not a multiple of 8, stacked.
  bool has_static_step() const override { return true; }
  MixerState static_state(int64_t, int64_t, const torch::TensorOptions& options) const override {
    MixerState state;
    torch::NoGradGuard no_grad;
    if (pairs_gate_up())
      state.constants["gate_up_pairs"] = interleave_gate_up(gate_proj_->weight, up_proj_->weight).to(options);
    else
      state.constants["gate_up_weight"] = torch::cat({gate_proj_->weight, up_proj_->weight}, 0).to(options);
    return state;
  }
  // x_t: [B, d] -> [B, d]
  torch::Tensor static_step(const torch::Tensor& x_t, MixerState& state, const StepPosition& at) override {
    return output_of(fused_static_step(x_t, {}, state, at));
  }
  // The hidden activations before down_proj: [B, hidden], with down_proj's weight and bias.
  bool has_fused_static_step() const override { return true; }
  UnprojectedStep fused_static_step(const torch::Tensor& h_t, const InputNorm& norm, MixerState& state,
                                    const StepPosition&) override {
    torch::Tensor hidden;  // [B, hidden]
    if (pairs_gate_up()) {
      hidden = swiglu_linear(h_t, state.constants.at("gate_up_pairs"), norm);
    } else {
      const auto gate_up = skinny_linear(h_t, state.constants.at("gate_up_weight"), {}, norm);  // [B, 2·hidden]
      hidden = gated(gate_up.narrow(-1, 0, hidden_), gate_up.narrow(-1, hidden_, hidden_));
    }
    return {hidden, down_proj_->weight, down_proj_->bias};
  }
  torch::Tensor static_prefill(const torch::Tensor& x, MixerState&) override { return forward(x); }

 private:
  // act(gate) ⊙ up; SwiGLU through its dispatch (one kernel on CUDA, mixers/swiglu.h).
  torch::Tensor gated(const torch::Tensor& gate, const torch::Tensor& up) const {
    if (!star_relu_) return swiglu(gate, up);
    return (star_scale_ * torch::relu(gate).square() + star_bias_) * up;
  }

  bool pairs_gate_up() const { return !star_relu_ && hidden_ % 8 == 0; }

  int64_t d_model_, hidden_;
  bool star_relu_;
  torch::nn::Linear gate_proj_{nullptr}, up_proj_{nullptr}, down_proj_{nullptr};
  torch::Tensor star_scale_, star_bias_;
};

}  // namespace

const RegisterMixer<GatedMlp> kGatedMlpRegistration(
    "mlp",
    "gated MLP channel mixer: SwiGLU (default) or StarReLU gate",
    {
        ParamSpec::integer("hidden", 0, "hidden width; 0 = expand·d_model rounded up to a multiple of 8", 0),
        ParamSpec::real("expand", 8.0 / 3.0, "hidden width as a multiple of d_model when hidden = 0", 0.01, 64),
        ParamSpec::text("activation", "swiglu", "gate activation", {"swiglu", "starrelu"}),
    },
    /*validate=*/nullptr,
    MixerKind::Channel);

}  // namespace mixlab
