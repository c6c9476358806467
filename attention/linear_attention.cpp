// `linear_attention`: causal linear attention (Katharopoulos et al., arXiv 2006.16236, §3.2–3.3),
// normalised, with LinFusion's generalised causal variant as an option (arXiv 2409.02097).
//
// Per head h (d_k = d_v = d_h = d / H), feature map φ(x) = elu(x) + 1 (or relu):
//
//   S_t = S_{t-1} + φ(k_t) v_tᵀ              [d_k, d_v]
//   z_t = z_{t-1} + φ(k_t)                   [d_k]
//   o_t = φ(q_t)ᵀ S_t / ( φ(q_t)ᵀ z_t + ε_t ),   ε_t = ε (plain) or ε·(t+1) (linfusion)
//   y_t = W_o concat_h(o_t)
//
// LinFusion (qk_mlp = linfusion): q = W_q(u + f_q(u)), k = W_k(u + f_k(u)), v = W_v u with
// f = Linear(d, d_m) → LayerNorm → LeakyReLU(0.01) → Linear(d_m, d).  The original sums over all
// N positions and divides by the mean; the causal variant sums over the prefix, so its ε is scaled
// by the prefix length t+1 to match the mean-normalised form.
//
// Both sums are kept in one augmented state S'_t = Σ φ(k_s) [v_s, 1]ᵀ : [d_k, d_v + 1]; the last
// column is z_t.  Training/prefill uses the chunked form (chunk C): inside a chunk
//   O' = [(φQ φKᵀ) ∘ M_causal] V' + φQ S'_prev,   S'_next = S'_prev + φKᵀ V'
// and decoding the recurrence above.  Time O(N·C·d + N·d·d_h), state H·d_h·(d_h + 1).
// No RoPE (position enters only through causality), as in the original.

#include "attention/multi_head.h"
#include "core/init.h"
#include "core/register_mixer.h"

namespace mixlab {
namespace {

class LinearAttention : public TokenMixer {
 public:
  LinearAttention(const MixerContext& context, const MixerParams& params)
      : chunk_size_(params.integer("chunk_size")), eps_(params.real("eps")),
        relu_features_(params.text("feature_map") == "relu"),
        linfusion_(params.text("qk_mlp") == "linfusion") {
    heads_.create(*this, context, /*rope_theta, unused*/ 1e4);
    d_mlp_ = params.integer("mlp_width") > 0 ? params.integer("mlp_width") : context.d_model;
    if (linfusion_) {
      q_mlp_ = make_mlp("q_mlp", context);
      k_mlp_ = make_mlp("k_mlp", context);
    }
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    const int64_t batch = x.size(0), n = x.size(1);
    auto [q, k, v] = features(x);  // [B, H, N, d_h] each, q and k already through φ
    auto v_aug = torch::cat({v, torch::ones_like(v.narrow(-1, 0, 1))}, -1);  // [B, H, N, d_h + 1]
    auto state = torch::zeros({batch, heads_.n_heads, heads_.head_dim, heads_.head_dim + 1}, x.options());
    std::vector<torch::Tensor> outputs;
    for (int64_t start = 0; start < n; start += chunk_size_) {
      const int64_t len = std::min(chunk_size_, n - start);
      auto qc = q.narrow(2, start, len), kc = k.narrow(2, start, len), vc = v_aug.narrow(2, start, len);
      auto mask = torch::ones({len, len}, x.options()).tril();                 // [C, C], s <= t
      auto scores = torch::matmul(qc, kc.transpose(-2, -1)) * mask;           // [B, H, C, C]
      auto out = torch::matmul(scores, vc) + torch::matmul(qc, state);        // [B, H, C, d_h + 1]
      state = state + torch::matmul(kc.transpose(-2, -1), vc);
      outputs.push_back(normalise(out, start));
    }
    return heads_.output(torch::cat(outputs, 2));
  }

  // matmul_flops: the products the chunked forward issues — 4 projections (8·N·d²), LinFusion's
  // two MLPs (8·N·d·d_m), and per chunk of length L and head: φQφKᵀ (2·L²·d_h), scores·V'
  // (2·L²·(d_h+1)), φQ·S' (2·L·d_h·(d_h+1)), φKᵀV' (2·L·d_h·(d_h+1)); the masked upper half of
  // each L×L block is computed.  flops: the same with only the L(L+1)/2 kept pairs per chunk,
  // plus feature maps, mask and normalisation (~5 FLOPs per q/k/v element).
  Cost cost(const CostShape& shape) const override {
    const double b = shape.batch, n = shape.seq_len, d = heads_.d_model, h = heads_.n_heads,
                 dh = heads_.head_dim;
    double dense_pairs = 0, kept_pairs = 0;
    for (int64_t start = 0; start < shape.seq_len; start += chunk_size_) {
      const double len = std::min(chunk_size_, shape.seq_len - start);
      dense_pairs += len * len;
      kept_pairs += len * (len + 1) / 2;
    }
    const double linear = heads_.projection_flops(shape.batch, shape.seq_len) +
                          (linfusion_ ? 8.0 * b * n * d * d_mlp_ : 0.0);
    const double state_products = b * h * 4.0 * n * dh * (dh + 1);
    Cost cost;
    cost.matmul_flops = linear + state_products + b * h * dense_pairs * 2.0 * (2 * dh + 1);
    cost.flops = linear + state_products + b * h * kept_pairs * 2.0 * (2 * dh + 1) + 5.0 * b * n * 3 * d;
    cost.state_bytes = b * h * dh * (dh + 1) * shape.bytes_per_element;
    return cost;
  }

  bool has_step() const override { return true; }
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override {
    MixerState state;
    state.tensors["kv_state"] =
        torch::zeros({batch, heads_.n_heads, heads_.head_dim, heads_.head_dim + 1}, options);
    return state;
  }
  // The recurrence: S' += φ(k_t) [v_t, 1]ᵀ, o_t = φ(q_t)ᵀ S' normalised.
  torch::Tensor step(const torch::Tensor& x_t, MixerState& state) override {
    auto [q, k, v] = features(x_t.unsqueeze(1));  // [B, H, 1, d_h]
    auto v_aug = torch::cat({v, torch::ones_like(v.narrow(-1, 0, 1))}, -1);
    auto& kv = state.tensors["kv_state"];
    kv = kv + torch::matmul(k.transpose(-2, -1), v_aug);
    auto out = normalise(torch::matmul(q, kv), state.position);
    state.position += 1;
    return heads_.output(out).squeeze(1);
  }

 private:
  torch::nn::Sequential make_mlp(const char* name, const MixerContext& context) {
    auto in = torch::nn::Linear(context.d_model, d_mlp_);
    auto out = torch::nn::Linear(d_mlp_, context.d_model);
    normal_init(in, context.init_std);
    normal_init(out, context.init_std);
    return register_module(name, torch::nn::Sequential(
        in, torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_mlp_})),
        torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.01)), out));
  }

  torch::Tensor feature_map(const torch::Tensor& x) const {
    return relu_features_ ? torch::relu(x) : torch::elu(x) + 1.0;
  }

  // x: [B, N, d] -> φ(q), φ(k), v : [B, H, N, d_h]
  MultiHeadProjections::Heads features(const torch::Tensor& x) {
    const int64_t batch = x.size(0), n = x.size(1);
    auto split = [&](const torch::Tensor& t) {
      return t.view({batch, n, heads_.n_heads, heads_.head_dim}).transpose(1, 2);
    };
    auto q_in = linfusion_ ? x + q_mlp_->forward(x) : x;
    auto k_in = linfusion_ ? x + k_mlp_->forward(x) : x;
    return {feature_map(split(heads_.q_proj->forward(q_in))),
            feature_map(split(heads_.k_proj->forward(k_in))), split(heads_.v_proj->forward(x))};
  }

  // out: [B, H, L, d_h + 1] for positions first..first+L-1 -> numerator / (denominator + ε_t)
  torch::Tensor normalise(const torch::Tensor& out, int64_t first) const {
    const int64_t len = out.size(2), dh = heads_.head_dim;
    auto denominator = out.narrow(-1, dh, 1);
    if (linfusion_) {
      auto lengths = torch::arange(first + 1, first + len + 1, out.options()).view({len, 1});
      denominator = denominator + eps_ * lengths;
    } else {
      denominator = denominator + eps_;
    }
    return out.narrow(-1, 0, dh) / denominator;
  }

  MultiHeadProjections heads_;
  int64_t chunk_size_, d_mlp_ = 0;
  double eps_;
  bool relu_features_, linfusion_;
  torch::nn::Sequential q_mlp_{nullptr}, k_mlp_{nullptr};
};

}  // namespace

const RegisterMixer<LinearAttention> kLinearAttentionRegistration(
    "linear_attention",
    "causal normalised linear attention (elu+1), chunked; LinFusion causal variant",
    {
        ParamSpec::text("feature_map", "elu", "φ: elu (elu(x)+1) or relu", {"elu", "relu"}),
        ParamSpec::text("qk_mlp", "none",
                        "none = Katharopoulos; linfusion = residual MLPs on the q/k inputs, ε·(t+1)",
                        {"none", "linfusion"}),
        ParamSpec::integer("mlp_width", 0, "LinFusion MLP width d_m; 0 = d_model", 0, 65536),
        ParamSpec::integer("chunk_size", 64, "chunk length C of the training/prefill form", 1, 65536),
        ParamSpec::real("eps", 1e-6, "ε added to the normaliser (scaled by t+1 for linfusion)", 0.0, 1.0),
    },
    [](const MixerContext& context, const MixerParams&) {
      if (context.d_model % context.n_heads != 0)
        throw RegistryError("linear_attention: d_model (" + std::to_string(context.d_model) +
                            ") must be divisible by n_heads (" + std::to_string(context.n_heads) + ")");
    });

}  // namespace mixlab
