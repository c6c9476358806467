// `causal_sgu`: gMLP's spatial gating unit with a lower-triangular token-mixing matrix (Liu, Dai,
// So & Le, "Pay Attention to MLPs", NeurIPS 2021, arXiv 2105.08050, §2.1), the causal form of the
// token-mixing MLPs of NiNformer (Abdullah & Aydin, arXiv 2403.02411, §3) and Tiny Time Mixers
// (Ekambaram et al., NeurIPS 2024, arXiv 2401.03955, §3).
//
//   z_t = GELU( U u_t ),                          U: d -> E (E = expansion·d, even), no bias  [B, N, E]
//   z_t = [z1_t ∥ z2_t]                           halves of E/2 channels each
//   f_t = Σ_{s≤t} W[t, s] · LN(z2)_s + b_t        W: [L, L] lower-triangular, b: [L]      (the SGU)
//   y_t = V ( z1_t ⊙ f_t ),                       V: E/2 -> d, no bias
//
// W is initialised near zero and b to ones, so that the unit starts as a plain gated MLP (§2.1).
// What the causal 1D form changes: gMLP, NiNformer's inner MLP-Mixer and TTM's patch mixer mix a fixed
// set of tokens with a dense n×n matrix that reads the future; here W is masked to s ≤ t (gMLP's own
// choice for its autoregressive experiments).  The mixer is length-bound: W and b exist for
// L = max_len positions, and a longer sequence is refused.  Positions are absolute: W[t, s] is a
// learned weight per pair, not per lag.
//
// Cost: projections 2·N·d·E + 2·N·(E/2)·d; the masked product 2·N²·(E/2) as issued (dense [N, N]
// block) or (E/2)·N(N+1) for the pairs the rule keeps; LN, GELU, bias and gate ~12·N·E.
// Decoding keeps every past LN(z2)_s, N·E/2 per sequence, and costs O(t·E) per token.

#include "core/init.h"
#include "core/register_mixer.h"

namespace mixlab {
namespace {

class CausalSgu : public TokenMixer {
 public:
  CausalSgu(const MixerContext& context, const MixerParams& params)
      : d_model_(context.d_model),
        half_(std::max<int64_t>(1, static_cast<int64_t>(std::llround(params.real("expansion") * context.d_model)) / 2)),
        max_len_(params.integer("max_len")) {
    in_proj_ = register_module("in_proj", torch::nn::Linear(torch::nn::LinearOptions(d_model_, 2 * half_).bias(false)));
    out_proj_ = register_module("out_proj", torch::nn::Linear(torch::nn::LinearOptions(half_, d_model_).bias(false)));
    normal_init(in_proj_, context.init_std);
    normal_init(out_proj_, context.init_std);
    norm_ = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({half_})));
    // gMLP §2.1: "initialize W as near-zero values and b as ones".
    spatial_weight_ = register_parameter("spatial_weight", torch::randn({max_len_, max_len_}) * (1e-3));
    spatial_bias_ = register_parameter("spatial_bias", torch::ones({max_len_}));
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    const int64_t n = x.size(1);
    check_length(n);
    auto z = torch::gelu(in_proj_->forward(x));                     // [B, N, E]
    auto gate = z.narrow(-1, 0, half_), mixed = norm_->forward(z.narrow(-1, half_, half_));
    auto w = spatial_weight_.narrow(0, 0, n).narrow(1, 0, n).tril();  // [N, N], W[t, s] for s ≤ t
    auto f = torch::matmul(w, mixed) + spatial_bias_.narrow(0, 0, n).unsqueeze(-1);  // [B, N, E/2]
    return out_proj_->forward(gate * f);
  }

  Cost cost(const CostShape& shape) const override {
    const double b = shape.batch, n = shape.seq_len, d = d_model_, h = half_;
    Cost cost;
    const double projections = 2.0 * b * n * d * (2 * h) + 2.0 * b * n * h * d;
    cost.matmul_flops = projections + 2.0 * b * n * n * h;
    cost.flops = projections + b * h * n * (n + 1) + 12.0 * b * n * 2 * h;
    cost.state_bytes = b * n * h * shape.bytes_per_element;
    return cost;
  }

  bool has_step() const override { return true; }
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override {
    MixerState state;
    state.tensors["normed_history"] = torch::zeros({batch, 0, half_}, options);  // every past LN(z2)_s
    return state;
  }
  // f_t = W[t, :t+1] · LN(z2)_{0..t} + b_t, directly.
  torch::Tensor step(const torch::Tensor& x_t, MixerState& state) override {
    const int64_t t = state.position;
    check_length(t + 1);
    auto z = torch::gelu(in_proj_->forward(x_t));                   // [B, E]
    auto& history = state.tensors["normed_history"];
    history = torch::cat({history, norm_->forward(z.narrow(-1, half_, half_)).unsqueeze(1)}, 1);  // [B, t+1, E/2]
    auto row = spatial_weight_.select(0, t).narrow(0, 0, t + 1);    // [t+1]
    auto f = (history * row.unsqueeze(-1)).sum(1) + spatial_bias_[t];
    state.position += 1;
    return out_proj_->forward(z.narrow(-1, 0, half_) * f);
  }

 private:
  void check_length(int64_t n) const {
    if (n > max_len_)
      throw std::invalid_argument("causal_sgu: sequence length " + std::to_string(n) + " exceeds max_len = " +
                                  std::to_string(max_len_) +
                                  " (the token-mixing matrix has max_len rows; raise the parameter)");
  }

  int64_t d_model_, half_, max_len_;
  torch::nn::Linear in_proj_{nullptr}, out_proj_{nullptr};
  torch::nn::LayerNorm norm_{nullptr};
  torch::Tensor spatial_weight_, spatial_bias_;
};

}  // namespace

const RegisterMixer<CausalSgu> kCausalSguRegistration(
    "causal_sgu",
    "gMLP spatial gating unit with a lower-triangular token-mixing matrix (NiNformer, TTM); length-bound",
    {
        ParamSpec::real("expansion", 2.0, "inner width E as a multiple of d_model (split in two halves)", 0.01, 64),
        ParamSpec::integer("max_len", 1024, "longest sequence: the token-mixing matrix is max_len x max_len", 1,
                           1 << 16),
    });

}  // namespace mixlab
