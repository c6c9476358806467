// `fft_conv`: a causal global convolution applied by FFT — AFFNet's frequency-domain filtering
// made causal with the H3/Hyena construction (arXiv 2307.14008; docs/schemes.md, "FFT convolution").
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
// initialised as Gaussian noise under a per-channel exponential decay (see initial_kernels).  Transforms run in float32
// (float64 for float64 input) on CPU and GPU through torch::fft.
//
// Cost: projections 2·N·d·d·(2 or 3); FFTs ≈ 3 transforms of d channels × 2.5·M·log2 M plus the
// complex product 6·d·(M/2+1); D and gate ~3·N·d.  Decoding keeps every past v (N·d) and costs
// O(t·d) per token.
//
// Dynamic Spectrum Mixer (Hu & Yu, arXiv 2309.06721, §3: a content-dependent weighting of spectral
// bands) as `num_filters` = K > 1 and `dynamic`: K causal global kernels K_j, mixed per token and
// channel by weights a_{t,j} computed from the causal running mean of the input (the DFFormer
// "dynamic filter" recipe, softmax over filters of an MLP of the pooled features):
//
//   c_t = Σ_{j<K} a_{t,j} ⊙ (K_j ∗ v)_t + D ⊙ v_t                   a_{t,j}, (K_j ∗ v)_t: [d]
//   a_t = softmax_j( reshape_{K×d}( W_2 GELU( W_1 m_t ) ) ),  m_t = (1/(t+1)) Σ_{s≤t} u_s
//         W_1: d -> h = max(1, d/4),  W_2: h -> K·d,  no biases                 (dynamic = true)
//   a_{t,j} = softmax_j(ℓ)_j,  ℓ: [K, d] learned, the same for every token     (dynamic = false)
//
// The paper weights DCT coefficients with weights pooled over the whole image: the DCT product is a
// two-sided (zero-phase) filter and the pool reads the future, so neither is causal.  Kept: a bank of
// global filters applied in O(N log N) whose mixture is chosen from the content; the DCT becomes the
// zero-padded FFT above and the global pool the running mean m_t.  Extra cost: K−1 more inverse FFTs
// and kernel FFTs, the mixture 5·N·K·d, and (dynamic) the MLP 2·N·h·(d + K·d); decoding also keeps
// Σ_{s≤t} u_s (d per sequence).  K = 1 is the single-kernel mixer above, unchanged.

#include "core/init.h"
#include "core/register_mixer.h"

#include <torch/fft.h>

#include <cmath>

namespace mixlab {
namespace {

int64_t fft_length(int64_t n) {
  int64_t m = 1;
  while (m < 2 * n) m *= 2;
  return m;
}

// K[j, c, τ] = ε_{j,c,τ} · exp(−r_c τ) / √(Σ_τ exp(−2 r_c τ)),  r_c log-spaced from 1/max_len to 1/2,
// so that some channels look far back and others mostly locally; each row has unit expected norm.
torch::Tensor initial_kernels(int64_t filters, int64_t d_model, int64_t max_len) {
  auto lags = torch::arange(max_len, torch::kFloat64);
  auto rates = torch::logspace(std::log10(1.0 / max_len), std::log10(0.5), d_model, 10.0, torch::kFloat64);
  auto envelope = torch::exp(-rates.unsqueeze(1) * lags.unsqueeze(0));
  envelope = envelope / envelope.square().sum(1, true).sqrt();
  return (torch::randn({filters, d_model, max_len}, torch::kFloat64) * envelope).to(torch::get_default_dtype());
}

class FftConv : public TokenMixer {
 public:
  FftConv(const MixerContext& context, const MixerParams& params)
      : d_model_(context.d_model),
        max_len_(params.integer("max_len")),
        filters_(params.integer("num_filters")),
        mix_width_(std::max<int64_t>(1, context.d_model / 4)),
        dynamic_(params.boolean("dynamic")),
        gate_(params.text("gate")) {
    auto make = [&](const char* name, int64_t in, int64_t out) {
      auto linear = register_module(name, torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)));
      normal_init(linear, context.init_std);
      return linear;
    };
    v_proj_ = make("v_proj", d_model_, d_model_);
    if (gate_ != "none") g_proj_ = make("g_proj", d_model_, d_model_);
    o_proj_ = make("o_proj", d_model_, d_model_);
    // One kernel keeps its historical shape [d, max_len]; a bank is [K, d, max_len].
    auto kernels = initial_kernels(filters_, d_model_, max_len_);
    kernel_ = register_parameter("kernel", filters_ == 1 ? kernels.squeeze(0) : kernels);
    skip_ = register_parameter("skip", torch::ones({d_model_}));
    if (dynamic_) {
      mix_in_ = make("mix_in", d_model_, mix_width_);
      mix_out_ = make("mix_out", mix_width_, filters_ * d_model_);
    } else if (filters_ > 1) {
      mix_logits_ = register_parameter("mix_logits", torch::zeros({filters_, d_model_}));
    }
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    const int64_t n = x.size(1);
    check_length(n);
    auto v = v_proj_->forward(x);                                       // [B, N, d]
    const auto compute = x.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
    const int64_t m = fft_length(n);
    auto v_freq = torch::fft::rfft(v.transpose(1, 2).to(compute), m, -1).unsqueeze(1);    // [B, 1, d, M/2+1]
    auto k_freq = torch::fft::rfft(kernels().narrow(2, 0, n).to(compute), m, -1);          // [K, d, M/2+1]
    auto conv = torch::fft::irfft(v_freq * k_freq, m, -1).narrow(-1, 0, n);                // [B, K, d, N]
    conv = conv.permute({0, 3, 1, 2}).to(x.scalar_type());                                 // [B, N, K, d]
    auto c = mix(conv, running_mean(x)) + skip_ * v;
    return o_proj_->forward(gated(c, x));
  }

  // matmul_flops: the 2 or 3 d×d projections and, when dynamic, the mixing MLP (the FFTs are not
  // matrix products).
  Cost cost(const CostShape& shape) const override {
    const double b = shape.batch, n = shape.seq_len, d = d_model_, k = filters_, h = mix_width_;
    const double m = fft_length(shape.seq_len);
    const double projections = (gate_ == "none" ? 2.0 : 3.0);
    const double transform = 2.5 * m * std::log2(m);
    Cost cost;
    cost.matmul_flops = projections * 2.0 * b * n * d * d + (dynamic_ ? 2.0 * b * n * h * (d + k * d) : 0.0);
    cost.flops = cost.matmul_flops + b * d * transform + (b + 1) * k * d * transform +
                 6.0 * b * k * d * (m / 2 + 1) + 3.0 * b * n * d;
    if (filters_ > 1) cost.flops += 5.0 * b * n * k * d;        // softmax over K and the weighted sum
    if (dynamic_) cost.flops += 2.0 * b * n * d + 8.0 * b * n * h;  // running mean, GELU
    cost.state_bytes = b * (n + (dynamic_ ? 1 : 0)) * d * shape.bytes_per_element;
    return cost;
  }

  bool has_step() const override { return true; }
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override {
    MixerState state;
    state.tensors["values"] = torch::zeros({batch, 0, d_model_}, options);  // every past v_s
    if (dynamic_) state.tensors["input_sum"] = torch::zeros({batch, d_model_}, options);  // Σ_{s≤t} u_s
    return state;
  }
  // (K_j ∗ v)_t = Σ_{s≤t} K_{j, :, t-s} ⊙ v_s directly, then the same mixture, skip and gate.
  torch::Tensor step(const torch::Tensor& x_t, MixerState& state) override {
    const int64_t t = state.position;
    check_length(t + 1);
    auto v_t = v_proj_->forward(x_t);                                    // [B, d]
    auto& values = state.tensors["values"];
    values = torch::cat({values, v_t.unsqueeze(1)}, 1);                  // [B, t+1, d]
    auto lags_reversed = kernels().narrow(2, 0, t + 1).flip({2}).permute({0, 2, 1});  // [K, t+1, d]: row s holds K_{:, t-s}
    auto conv = (values.unsqueeze(1) * lags_reversed).sum(2);            // [B, K, d]
    torch::Tensor mean;
    if (dynamic_) {
      auto& input_sum = state.tensors["input_sum"];
      input_sum = input_sum + x_t;
      mean = input_sum / static_cast<double>(t + 1);
    }
    state.position += 1;
    return o_proj_->forward(gated(mix(conv, mean) + skip_ * v_t, x_t));
  }

 private:
  torch::Tensor kernels() const { return filters_ == 1 ? kernel_.unsqueeze(0) : kernel_; }  // [K, d, max_len]

  // m_t = (1/(t+1)) Σ_{s≤t} u_s for the dynamic weights; undefined otherwise.  [B, N, d]
  torch::Tensor running_mean(const torch::Tensor& x) const {
    if (!dynamic_) return {};
    auto counts = torch::arange(1, x.size(1) + 1, x.options()).unsqueeze(-1);  // [N, 1]
    return x.cumsum(1) / counts;
  }

  // Σ_j a_j ⊙ conv_j.  conv: [..., K, d]; mean: [..., d] (dynamic) -> [..., d]
  torch::Tensor mix(const torch::Tensor& conv, const torch::Tensor& mean) {
    if (filters_ == 1 && !dynamic_) return conv.select(-2, 0);
    torch::Tensor logits = mix_logits_;  // [K, d]
    if (dynamic_) {
      logits = mix_out_->forward(torch::gelu(mix_in_->forward(mean)));   // [..., K·d]
      auto shape = mean.sizes().vec();
      shape.back() = filters_;
      shape.push_back(d_model_);
      logits = logits.view(shape);                                       // [..., K, d]
    }
    return (torch::softmax(logits, -2) * conv).sum(-2);
  }

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

  int64_t d_model_, max_len_, filters_, mix_width_;
  bool dynamic_;
  std::string gate_;
  torch::nn::Linear v_proj_{nullptr}, g_proj_{nullptr}, o_proj_{nullptr}, mix_in_{nullptr}, mix_out_{nullptr};
  torch::Tensor kernel_, skip_, mix_logits_;
};

}  // namespace

const RegisterMixer<FftConv> kFftConvRegistration(
    "fft_conv",
    "causal global convolution by zero-padded FFT (AFFNet made causal, Hyena-style gate; "
    "DSM filter bank with num_filters/dynamic)",
    {
        ParamSpec::integer("max_len", 8192, "longest sequence; the explicit kernel has max_len lags", 1, 1 << 20),
        ParamSpec::text("gate", "linear", "multiplicative gate: none, linear (Hyena) or silu",
                        {"none", "linear", "silu"}),
        ParamSpec::integer("num_filters", 1, "K: global kernels mixed per token and channel (Dynamic Spectrum Mixer)",
                           1, 64),
        ParamSpec::boolean("dynamic", false,
                           "mix the K kernels by softmax(MLP(causal running mean)) per token; false: learned "
                           "static weights (needs num_filters >= 2)"),
    },
    [](const MixerContext&, const MixerParams& params) {
      if (params.boolean("dynamic") && params.integer("num_filters") < 2)
        throw RegistryError("fft_conv: dynamic = true mixes several kernels; set num_filters >= 2 (got " +
                            std::to_string(params.integer("num_filters")) + ")");
    });

}  // namespace mixlab
