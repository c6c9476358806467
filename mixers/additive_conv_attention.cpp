// `additive_conv_attention`: CAS-ViT's Convolutional Additive Token Mixer (Zhang et al., "CAS-ViT:
// Convolutional Additive Self-attention Vision Transformers for Efficient Mobile Applications",
// arXiv 2408.03703, §3.2-3.3), made causal for 1D language modelling.
//
// The "additive similarity" Φ_q(q) + Φ_k(k) replaces q·kᵀ, so the cost is linear in N:
//
//   q_t, k_t, v_t = W_q u_t, W_k u_t, W_v u_t                          d -> d each, no bias
//   S(z)_t = z_t · σ( w_s · ReLU( dwconv(z)_t ) )                       spatial gate: one scalar per token
//   C(z)_t = z_t ⊙ σ( W_c m_t ),   m_t = (1/(t+1)) Σ_{s≤t} z_s          channel gate on the running mean
//   Φ(z)   = C(S(z))                                                    separate Φ_q and Φ_k
//   y_t    = dwconv_proj( dwconv_mix( Φ_q(q) + Φ_k(k) ) ⊙ v )_t
//
// Every dwconv is a causal depthwise convolution with bias over the last k tokens (k = 3):
//   dwconv(z)_t = Σ_{i<k} w_{:, i} ⊙ z_{t-(k-1-i)} + c.
// What the causal 1D form changes from the paper: the 3×3 convolutions see the last k tokens (left
// padding k−1) instead of a centred window; BatchNorm in the spatial gate is dropped (batch statistics
// mix positions); the global average pool of the channel gate becomes the causal running mean m_t,
// which is the mixer's only long-range path (everything else sees k + k − 1 + k − 1 tokens).
//
// Cost per token: the three projections and the two channel gates W_c m_t are d×d products,
// 10·d² FLOPs; four k-tap depthwise convolutions 8·d·k; the two spatial-gate dot products 4·d;
// biases, gates, running means and the products ~14·d.  Decoding state: the four convolution histories
// (k−1)·d each and the two running sums Σ S(q), Σ S(k) of d each.

#include "core/init.h"
#include "core/registry.h"
#include "mixers/causal_depthwise_conv.h"
#include "core/register_mixer.h"

namespace mixlab {
namespace {

// Φ(z) = C(S(z)) for one of q, k: the depthwise conv of the spatial gate, its 1×1 projection to one
// scalar w_s, and the channel projection W_c.
struct AdditiveGate {
  torch::Tensor conv_weight, conv_bias, spatial;  // [d, 1, k], [d], [d]
  torch::nn::Linear channel{nullptr};             // W_c: d -> d, no bias

  void create(torch::nn::Module& owner, const std::string& prefix, int64_t d, int64_t kernel, double init_std) {
    conv_weight = owner.register_parameter(prefix + "_conv_weight", torch::randn({d, 1, kernel}) / std::sqrt(double(kernel)));
    conv_bias = owner.register_parameter(prefix + "_conv_bias", torch::zeros({d}));
    spatial = owner.register_parameter(prefix + "_spatial_weight", torch::randn({d}) / std::sqrt(double(d)));
    channel = owner.register_module(prefix + "_channel", torch::nn::Linear(torch::nn::LinearOptions(d, d).bias(false)));
    normal_init(channel, init_std);
  }
  // S(z) given the convolved z (dwconv(z)): z · σ(w_s · ReLU(conv)).   [.., d] -> [.., d]
  torch::Tensor spatial_gate(const torch::Tensor& z, const torch::Tensor& convolved) const {
    return z * torch::sigmoid((torch::relu(convolved) * spatial).sum(-1, /*keepdim=*/true));
  }
  // z: [B, N, d] -> Φ(z): [B, N, d]
  torch::Tensor forward(const torch::Tensor& z) {
    auto s = spatial_gate(z, causal_depthwise_conv(z, conv_weight, conv_bias));
    auto counts = torch::arange(1, z.size(1) + 1, z.options()).unsqueeze(-1);  // [N, 1]: t+1
    auto running_mean = s.cumsum(1) / counts;                                   // m_t
    return s * torch::sigmoid(channel->forward(running_mean));
  }
  // z_t: [B, d] -> Φ(z)_t, advancing the conv history and the running sum of S(z).
  torch::Tensor step(const torch::Tensor& z_t, torch::Tensor& history, torch::Tensor& running_sum, int64_t t) {
    auto s = spatial_gate(z_t, causal_depthwise_conv_step(history, z_t, conv_weight, conv_bias));
    running_sum = running_sum + s;
    return s * torch::sigmoid(channel->forward(running_sum / static_cast<double>(t + 1)));
  }
};

class AdditiveConvAttention : public TokenMixer {
 public:
  AdditiveConvAttention(const MixerContext& context, const MixerParams& params)
      : d_model_(context.d_model), kernel_(params.integer("kernel_size")) {
    auto make = [&](const char* name) {
      auto linear = register_module(name, torch::nn::Linear(torch::nn::LinearOptions(d_model_, d_model_).bias(false)));
      normal_init(linear, context.init_std);
      return linear;
    };
    q_proj_ = make("q_proj");
    k_proj_ = make("k_proj");
    v_proj_ = make("v_proj");
    query_gate_.create(*this, "query", d_model_, kernel_, context.init_std);
    key_gate_.create(*this, "key", d_model_, kernel_, context.init_std);
    auto depthwise = [&](const std::string& name) {
      conv_weights_.push_back(register_parameter(name + "_weight", torch::randn({d_model_, 1, kernel_}) / std::sqrt(double(kernel_))));
      conv_biases_.push_back(register_parameter(name + "_bias", torch::zeros({d_model_})));
    };
    depthwise("mix_conv");   // dwconv_mix on Φ_q(q) + Φ_k(k)
    depthwise("proj_conv");  // dwconv_proj on the product with v
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    auto similarity = query_gate_.forward(q_proj_->forward(x)) + key_gate_.forward(k_proj_->forward(x));  // [B, N, d]
    auto mixed = causal_depthwise_conv(similarity, conv_weights_[0], conv_biases_[0]) * v_proj_->forward(x);
    return causal_depthwise_conv(mixed, conv_weights_[1], conv_biases_[1]);
  }

  Cost cost(const CostShape& shape) const override {
    const double tokens = static_cast<double>(shape.batch) * shape.seq_len, d = d_model_;
    Cost cost;
    cost.matmul_flops = 10.0 * tokens * d * d;
    cost.flops = cost.matmul_flops + tokens * d * (8.0 * kernel_ + 4.0 + 14.0);
    cost.state_bytes = static_cast<double>(shape.batch) * (4 * (kernel_ - 1) + 2) * d * shape.bytes_per_element;
    return cost;
  }

  bool has_step() const override { return true; }
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override {
    MixerState state;
    for (const char* name : {"query_conv_history", "key_conv_history", "mix_conv_history", "proj_conv_history"})
      state.tensors[name] = torch::zeros({batch, d_model_, kernel_ - 1}, options);
    state.tensors["query_running_sum"] = torch::zeros({batch, d_model_}, options);  // Σ_{s≤t} S(q)_s
    state.tensors["key_running_sum"] = torch::zeros({batch, d_model_}, options);    // Σ_{s≤t} S(k)_s
    return state;
  }
  torch::Tensor step(const torch::Tensor& x_t, MixerState& state) override {
    auto& tensors = state.tensors;
    const int64_t t = state.position;
    auto similarity =
        query_gate_.step(q_proj_->forward(x_t), tensors["query_conv_history"], tensors["query_running_sum"], t) +
        key_gate_.step(k_proj_->forward(x_t), tensors["key_conv_history"], tensors["key_running_sum"], t);
    auto mixed = causal_depthwise_conv_step(tensors["mix_conv_history"], similarity, conv_weights_[0], conv_biases_[0]) *
                 v_proj_->forward(x_t);
    state.position += 1;
    return causal_depthwise_conv_step(tensors["proj_conv_history"], mixed, conv_weights_[1], conv_biases_[1]);
  }

 private:
  int64_t d_model_, kernel_;
  torch::nn::Linear q_proj_{nullptr}, k_proj_{nullptr}, v_proj_{nullptr};
  AdditiveGate query_gate_, key_gate_;
  std::vector<torch::Tensor> conv_weights_, conv_biases_;  // mix, proj
};

}  // namespace

const RegisterMixer<AdditiveConvAttention> kAdditiveConvAttentionRegistration(
    "additive_conv_attention",
    "CAS-ViT additive token mixer made causal: conv spatial gates, running-mean channel gates",
    {
        ParamSpec::integer("kernel_size", 3, "k: length of every causal depthwise kernel (3 in the paper)", 1, 4096),
    });

}  // namespace mixlab
