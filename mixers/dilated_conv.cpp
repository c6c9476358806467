// `dilated_conv`: WaveMix's wavelet token mixer (Jeevan & Sethi, "WaveMix: A Resource-efficient
// Neural Network for Image Analysis", arXiv 2205.14375, §3) in causal 1D form: a stack of two-tap
// dilated causal filter banks initialised to the Haar wavelet, i.e. an undecimated ("à trous")
// Haar pyramid whose filters are learned.
//
//   a⁰_t = W_in u_t                                               W_in: d -> d, no bias   [B, N, d]
//   for level ℓ = 1..L, dilation δ_ℓ = 2^(ℓ−1)                     (a_s = 0 for s < 0)
//     aˡ_t = p_{ℓ,0} ⊙ aˡ⁻¹_{t−δ} + p_{ℓ,1} ⊙ aˡ⁻¹_t                 low-pass  (approximation)
//     dˡ_t = q_{ℓ,0} ⊙ aˡ⁻¹_{t−δ} + q_{ℓ,1} ⊙ aˡ⁻¹_t                 high-pass (detail)
//   z_t  = [d¹_t ∥ … ∥ dᴸ_t ∥ aᴸ_t]                                (L+1)·d sub-bands
//   y_t  = W_2 GELU( W_1 z_t )                                     W_1: (L+1)d -> E, W_2: E -> d
//
// p, q: [L, 2, d] per-channel taps, initialised to Haar: p = (1/√2, 1/√2), q = (−1/√2, 1/√2), so
// at initialisation aᴸ_t = 2^(−L/2) Σ_{i<2ᴸ} a⁰_{t−i}: each level halves the resolution of the
// approximation, as a wavelet pyramid does.  The receptive field is 2ᴸ tokens.
//
// What the causal 1D form changes from the paper: WaveMix takes a level-1 2D DWT (Haar) of a
// channel-reduced input, which pairs positions (2i, 2i+1) and so reads one token ahead; its
// sub-bands are decimated and a transposed convolution restores the resolution.  Here each Haar
// pair is (t−δ, t), causal; nothing is decimated, so the level-ℓ filter is dilated by 2^(ℓ−1)
// instead (the undecimated transform), and the MLP over concatenated sub-bands plays the role of
// WaveMix's 1×1-conv MLP; the transposed-conv upsampling and BatchNorm have no counterpart.
//
// Cost per token: W_in 2d², W_1 2(L+1)d·E, W_2 2E·d; the filter banks 8·L·d, GELU ~8·E.
// Decoding state: level ℓ keeps the last δ_ℓ values of aˡ⁻¹, Σ_ℓ 2^(ℓ−1) = 2ᴸ − 1 vectors of d.

#include "core/init.h"
#include "core/register_mixer.h"

#include <cmath>

namespace mixlab {
namespace {

class DilatedConv : public TokenMixer {
 public:
  DilatedConv(const MixerContext& context, const MixerParams& params)
      : d_model_(context.d_model),
        levels_(params.integer("levels")),
        width_(static_cast<int64_t>(std::llround(params.real("expansion") * context.d_model))) {
    auto make = [&](const char* name, int64_t in, int64_t out) {
      auto linear = register_module(name, torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)));
      normal_init(linear, context.init_std);
      return linear;
    };
    in_proj_ = make("in_proj", d_model_, d_model_);
    mlp_in_ = make("mlp_in", (levels_ + 1) * d_model_, width_);
    mlp_out_ = make("mlp_out", width_, d_model_);
    const double r = 1.0 / std::sqrt(2.0);
    // taps[ℓ, 0] multiplies aˡ⁻¹_{t−δ}, taps[ℓ, 1] multiplies aˡ⁻¹_t.   [L, 2, d]
    low_pass_ = register_parameter("low_pass", torch::full({levels_, 2, d_model_}, r));
    auto high = torch::full({levels_, 2, d_model_}, r);
    high.select(1, 0).fill_(-r);
    high_pass_ = register_parameter("high_pass", high);
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    const int64_t n = x.size(1);
    auto approximation = in_proj_->forward(x);                        // a⁰: [B, N, d]
    std::vector<torch::Tensor> bands;
    for (int64_t level = 0; level < levels_; ++level) {
      const int64_t dilation = int64_t{1} << level;
      // aˡ⁻¹_{t−δ}: shift right by δ with zeros before the start
      auto delayed = torch::constant_pad_nd(approximation, {0, 0, dilation, 0}).narrow(1, 0, n);
      bands.push_back(filter(high_pass_, level, delayed, approximation));
      approximation = filter(low_pass_, level, delayed, approximation);
    }
    bands.push_back(approximation);
    return mlp(torch::cat(bands, -1));
  }

  Cost cost(const CostShape& shape) const override {
    const double tokens = static_cast<double>(shape.batch) * shape.seq_len, d = d_model_, e = width_;
    Cost cost;
    cost.matmul_flops = tokens * (2.0 * d * d + 2.0 * (levels_ + 1) * d * e + 2.0 * e * d);
    cost.flops = cost.matmul_flops + tokens * (8.0 * levels_ * d + 8.0 * e);
    cost.state_bytes = static_cast<double>(shape.batch) * ((int64_t{1} << levels_) - 1) * d * shape.bytes_per_element;
    return cost;
  }

  bool has_step() const override { return true; }
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override {
    MixerState state;
    for (int64_t level = 0; level < levels_; ++level)  // the last δ inputs of the level, oldest first
      state.tensors["level" + std::to_string(level) + "_history"] =
          torch::zeros({batch, int64_t{1} << level, d_model_}, options);
    return state;
  }
  torch::Tensor step(const torch::Tensor& x_t, MixerState& state) override {
    auto approximation = in_proj_->forward(x_t);  // [B, d]
    std::vector<torch::Tensor> bands;
    for (int64_t level = 0; level < levels_; ++level) {
      auto& history = state.tensors["level" + std::to_string(level) + "_history"];  // [B, δ, d]
      auto delayed = history.select(1, 0);                                         // aˡ⁻¹_{t−δ}
      history = torch::cat({history.narrow(1, 1, history.size(1) - 1), approximation.unsqueeze(1)}, 1);
      bands.push_back(filter(high_pass_, level, delayed, approximation));
      approximation = filter(low_pass_, level, delayed, approximation);
    }
    bands.push_back(approximation);
    state.position += 1;
    return mlp(torch::cat(bands, -1));
  }

 private:
  // taps[ℓ, 0] ⊙ delayed + taps[ℓ, 1] ⊙ current
  static torch::Tensor filter(const torch::Tensor& taps, int64_t level, const torch::Tensor& delayed,
                              const torch::Tensor& current) {
    return taps[level][0] * delayed + taps[level][1] * current;
  }
  torch::Tensor mlp(const torch::Tensor& z) { return mlp_out_->forward(torch::gelu(mlp_in_->forward(z))); }

  int64_t d_model_, levels_, width_;
  torch::nn::Linear in_proj_{nullptr}, mlp_in_{nullptr}, mlp_out_{nullptr};
  torch::Tensor low_pass_, high_pass_;
};

}  // namespace

const RegisterMixer<DilatedConv> kDilatedConvRegistration(
    "dilated_conv",
    "WaveMix made causal: learned Haar-initialised dilated two-tap filter banks, MLP over sub-bands",
    {
        ParamSpec::integer("levels", 4, "L: pyramid levels; dilations 1, 2, ..., 2^(L-1), receptive field 2^L", 1, 16),
        ParamSpec::real("expansion", 2.0, "hidden width E of the sub-band MLP as a multiple of d_model", 0.01, 64),
    });

}  // namespace mixlab
