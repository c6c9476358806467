// `fft_conv`: a causal global convolution applied by FFT — AFFNet's frequency-domain filtering
// made causal with the H3/Hyena construction (research/mixers.md §7).
//
//   v_t = W_v u_t,   g_t = W_g u_t                      (g only when gate ≠ none)
//   c_t = Σ_{s ≤ t} K_{:, t-s} ⊙ v_s + D ⊙ v_t           per-channel causal kernel K: [d, max_len]
//       = irfft( rfft(v, M) ⊙ rfft(K[:, :N], M), M )[:N] + D ⊙ v,    M = 2^⌈log2 2N⌉ ≥ 2N
//   y_t = W_o ( c_t ⊙ act(g_t) ),   act = identity (Hyena order 2) or SiLU;  gate = none: y = W_o c
//
// Why this form: AFF multiplies the 2D spectrum by a mask computed from that same spectrum, which is
// global, content-dependent and circular, so it has no causal version.  What is kept is the global
// filter applied by FFT in O(N log N); zero padding to M ≥ 2N turns the circular product into a
// linear convolution, and a kernel supported on lags τ ≥ 0 makes it causal.  The data-dependent gate
// stands in for AFF's adaptive mask.  The kernel is explicit (GFNet-style, length-bound: N ≤ max_len),
// initialised as Gaussian noise under a per-channel exponential decay (see the constructor).  Transforms run in float32
// (float64 for float64 input) on CPU and GPU through torch::fft.
//
// Cost: projections 2·N·d·d·(2 or 3); FFTs ≈ 3 transforms of d channels × 2.5·M·log2 M plus the
// complex product 6·d·(M/2+1); D and gate ~3·N·d.  Decoding keeps every past v (N·d) and costs
// O(t·d) per token.

#include "attention/multi_head.h"

#include <torch/fft.h>

#include <cmath>

namespace mixlab {
namespace {

int64_t fft_length(int64_t n) {
  int64_t m = 1;
  while (m < 2 * n) m *= 2;
  return m;
}

class FftConv : public TokenMixer {
 public:
  FftConv(const MixerContext& context, const MixerParams& params)
      : d_model_(context.d_model), max_len_(params.integer("max_len")), gate_(params.text("gate")) {
    auto make = [&](const char* name) {
      auto linear = register_module(name, torch::nn::Linear(torch::nn::LinearOptions(d_model_, d_model_).bias(false)));
      normal_init(linear, context.init_std);
      return linear;
    };
    v_proj_ = make("v_proj");
    if (gate_ != "none") g_proj_ = make("g_proj");
    o_proj_ = make("o_proj");
    // K[j, τ] = ε_{j,τ} · exp(−r_j τ) / √(Σ_τ exp(−2 r_j τ)),  r_j log-spaced from 1/max_len to 1/2,
    // so that some channels look far back and others mostly locally; each row has unit expected norm.
    auto lags = torch::arange(max_len_, torch::kFloat64);
    auto rates = torch::logspace(std::log10(1.0 / max_len_), std::log10(0.5), d_model_, 10.0, torch::kFloat64);
    auto envelope = torch::exp(-rates.unsqueeze(1) * lags.unsqueeze(0));
    envelope = envelope / envelope.square().sum(1, true).sqrt();
    kernel_ = register_parameter("kernel", (torch::randn({d_model_, max_len_}, torch::kFloat64) * envelope)
                                               .to(torch::get_default_dtype()));
    skip_ = register_parameter("skip", torch::ones({d_model_}));
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    const int64_t n = x.size(1);
    check_length(n);
    auto v = v_proj_->forward(x);                                       // [B, N, d]
    const auto compute = x.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
    const int64_t m = fft_length(n);
    auto v_freq = torch::fft::rfft(v.transpose(1, 2).to(compute), m, -1);                 // [B, d, M/2+1]
    auto k_freq = torch::fft::rfft(kernel_.narrow(1, 0, n).to(compute), m, -1);            // [d, M/2+1]
    auto conv = torch::fft::irfft(v_freq * k_freq, m, -1).narrow(-1, 0, n);                // [B, d, N]
    auto c = conv.transpose(1, 2).to(x.scalar_type()) + skip_ * v;
    return o_proj_->forward(gated(c, x));
  }

  // matmul_flops: the 2 or 3 d×d projections (the FFTs are not matrix products).
  Cost cost(const CostShape& shape) const override {
    const double b = shape.batch, n = shape.seq_len, d = d_model_, m = fft_length(shape.seq_len);
    const double projections = (gate_ == "none" ? 2.0 : 3.0);
    const double transform = 2.5 * m * std::log2(m);
    Cost cost;
    cost.matmul_flops = projections * 2.0 * b * n * d * d;
    cost.flops = cost.matmul_flops + b * d * (2.0 * transform + 6.0 * (m / 2 + 1)) + d * transform +
                 3.0 * b * n * d;
    cost.state_bytes = b * n * d * shape.bytes_per_element;
    return cost;
  }

  bool has_step() const override { return true; }
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override {
    MixerState state;
    state.tensors["values"] = torch::zeros({batch, 0, d_model_}, options);  // every past v_s
    return state;
  }
  // c_t = Σ_{s≤t} K_{:, t-s} ⊙ v_s + D ⊙ v_t, directly.
  torch::Tensor step(const torch::Tensor& x_t, MixerState& state) override {
    const int64_t t = state.position;
    check_length(t + 1);
    auto v_t = v_proj_->forward(x_t);                                    // [B, d]
    auto& values = state.tensors["values"];
    values = torch::cat({values, v_t.unsqueeze(1)}, 1);                  // [B, t+1, d]
    auto lags_reversed = kernel_.narrow(1, 0, t + 1).flip({1}).t();       // [t+1, d]: row s holds K_{:, t-s}
    auto c = (values * lags_reversed).sum(1) + skip_ * v_t;
    state.position += 1;
    return o_proj_->forward(gated(c, x_t));
  }

 private:
  torch::Tensor gated(const torch::Tensor& c, const torch::Tensor& x) {
    if (gate_ == "none") return c;
    auto g = g_proj_->forward(x);
    return c * (gate_ == "silu" ? torch::silu(g) : g);
  }

  void check_length(int64_t n) const {
    if (n > max_len_)
      throw std::invalid_argument("fft_conv: sequence length " + std::to_string(n) + " exceeds max_len = " +
                                  std::to_string(max_len_) + " (the explicit kernel has max_len lags)");
  }

  int64_t d_model_, max_len_;
  std::string gate_;
  torch::nn::Linear v_proj_{nullptr}, g_proj_{nullptr}, o_proj_{nullptr};
  torch::Tensor kernel_, skip_;
};

}  // namespace

MIXLAB_REGISTER_MIXER(fft_conv) {
  MixerEntry entry;
  entry.name = "fft_conv";
  entry.description = "causal global convolution by zero-padded FFT (AFFNet made causal, Hyena-style gate)";
  entry.params = {
      ParamSpec::integer("max_len", 8192, "longest sequence; the explicit kernel has max_len lags", 1, 1 << 20),
      ParamSpec::text("gate", "linear", "multiplicative gate: none, linear (Hyena) or silu",
                      {"none", "linear", "silu"}),
  };
  entry.factory = [](const MixerContext& context, const MixerParams& params) -> TokenMixerPtr {
    return std::make_shared<FftConv>(context, params);
  };
  return entry;
}

}  // namespace mixlab
