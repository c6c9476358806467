// `dtrnet`: DTRNet's routed attention layer (Sharma et al., arXiv 2509.00925; docs/schemes.md, "DTRNet").
//
//   p_t     = softmax( W_r2 · SiLU( W_r1 h_t + b_r1 ) + b_r2 )        router on the RAW residual h_t
//                                                                     W_r1: d -> r (r = d/2), W_r2: r -> 2
//   routed  = { t : p_t[0] > threshold }                              per token, no top-k, no capacity
//   a_t     = W_O · MHA( q_t ; {k_s, v_s : s routed, s ≤ t} )          t routed: causal attention among
//                                                                     routed tokens, RoPE at original positions
//   a_t     = W_O · W_V u_t                                           t bypassed: attention to itself only
//   y_t     = p_t[0] · a_t  (routed)   or   p_t[1] · a_t  (bypassed)   the LM loss reaches the router here
//   L_aux   = aux_coef · mean_t p_t[0]                                (auxiliary_loss(); the model sums layers)
//
// u = RMSNorm(h) is the block's normalised input.  The model hands h over through
// forward_with_residual; a bare forward(u) routes on u (the registry-wide tests call that).
// The routing decision of token t depends on h_t alone, attention among routed tokens is causal
// and the bypass is token-local, so the layer is causal and decoding runs the same rule: a routed
// token appends its k, v to the KV cache, a bypassed one appends nothing (the cache holds routed
// tokens only).  Deviations from the released code: multi-head attention (no GQA), and no random
// fallback when no token of a batch is routed (the layer is then all bypass): every output is a
// deterministic function of its prefix, in training too.
//
// Cost with k routed tokens per sequence: router 2N·d·r + 4N·r; routed q,k 4·k·d²; v,o for all
// tokens 4·N·d²; attention 2·d·k(k+1) ideal causal; state 2·k·d elements.  Time O(N·d² + k²·d).
// The forward packs every row to the batch's largest k (one batched attention, no loop over
// sequences), so its products run over that K: cost().matmul_flops counts them.
// k is data-dependent: cost() uses the routing of the last forward (mean k and mean k² per
// sequence, scaled to the requested length as ρN and (ρN)²), or expected_routed_fraction·N before
// any forward.  At the shape of the last forward the figures are exact.

#include "attention/multi_head.h"
#include "attention/rope_cache.h"
#include "core/init.h"
#include "core/compat.h"
#include "core/register_mixer.h"

#include <cmath>
#include <optional>

namespace mixlab {
namespace {

class DtrNetLayer : public TokenMixer {
 public:
  DtrNetLayer(const MixerContext& context, const MixerParams& params)
      : threshold_(params.real("threshold")), aux_coef_(params.real("aux_coef")),
        expected_fraction_(params.real("expected_routed_fraction")) {
    heads_.create(*this, context, params.real("rope_theta"));
    router_hidden_ = params.integer("router_hidden") > 0 ? params.integer("router_hidden") : context.d_model / 2;
    router_in_ = register_module("router_in", torch::nn::Linear(context.d_model, router_hidden_));
    router_out_ = register_module("router_out", torch::nn::Linear(router_hidden_, 2));
    normal_init(router_in_, context.init_std);
    normal_init(router_out_, context.init_std);
  }

  torch::Tensor forward(const torch::Tensor& x) override { return forward_with_residual(x, x); }

  // u, h: [B, N, d] -> [B, N, d].  All sequences at once: each row's routed tokens are packed in
  // front, in order (rows padded to the batch's largest routed count K with bypassed tokens), so
  // causal attention over the K packed tokens is causal among the routed ones; the padding rows'
  // outputs are never read.  One host read per call (K); no per-sequence loop.
  torch::Tensor forward_with_residual(const torch::Tensor& u, const torch::Tensor& h) override {
    const int64_t batch = u.size(0), n = u.size(1);
    auto p = route(h);                                       // [B, N, 2]
    auto p_attention = p.select(-1, 0);                      // [B, N]
    auto routed = p_attention > threshold_;                  // [B, N] bool
    auto values = split(heads_.v_proj->forward(u));          // [B, H, N, d_h]: bypass output and routed values
    auto counts = routed.sum(1);                             // [B] routed tokens per sequence
    auto count_stats = torch::stack({counts.max(), counts.sum(), counts.pow(2).sum()}).to(torch::kDouble).cpu();
    const auto stat = count_stats.accessor<double, 1>();
    const auto k_max = static_cast<int64_t>(stat[0]);
    auto heads = values;                                     // [B, H, N, d_h]: v_t, attention where routed
    if (k_max > 0) {
      auto index = packed_order(routed, counts).narrow(1, 0, k_max);  // [B, K] original positions
      auto u_routed = u.gather(1, index.unsqueeze(-1).expand({batch, k_max, u.size(2)}));  // [B, K, d]
      auto [cos_all, sin_all] = rope_tables_cached(n, heads_.head_dim, heads_.rope_theta, u.options());
      auto rows = index.reshape({-1});                       // RoPE at the original positions
      auto cos = cos_all.index_select(0, rows).view({batch, 1, k_max, heads_.head_dim});
      auto sin = sin_all.index_select(0, rows).view({batch, 1, k_max, heads_.head_dim});
      auto q = apply_rope(split(heads_.q_proj->forward(u_routed)), cos, sin);  // [B, H, K, d_h]
      auto key = apply_rope(split(heads_.k_proj->forward(u_routed)), cos, sin);
      auto head_index = index.view({batch, 1, k_max, 1}).expand({batch, heads_.n_heads, k_max, heads_.head_dim});
      auto value = values.gather(2, head_index);
      auto attended = compat::causal_attention(q, key, value);                 // [B, H, K, d_h]
      heads = torch::where(routed.view({batch, 1, n, 1}), values.scatter(2, head_index, attended), values);
    }
    auto mixed = heads_.output(heads);                                         // [B, N, d]
    auto scale = torch::where(routed, p_attention, p.select(-1, 1)).unsqueeze(-1);
    last_aux_loss_ = aux_coef_ * p_attention.mean();
    last_routing_ = Routing{static_cast<double>(n), stat[1] / static_cast<double>(batch),
                            stat[2] / static_cast<double>(batch), static_cast<double>(k_max)};
    return scale * mixed;
  }

  torch::Tensor auxiliary_loss() const override { return last_aux_loss_; }
  std::map<std::string, double> statistics() const override {
    if (!last_routing_) return {};
    return {{"routed_fraction", last_routing_->mean_routed / last_routing_->seq_len}};
  }

  // flops: as in the header, ideal causal among the k routed tokens.  matmul_flops: the products
  // the forward issues, which run over the batch's largest routed count K (rows padded to it):
  // router (2N·d·r + 4N·r), q,k of the K packed tokens (4·K·d²), v and o of all tokens (4·N·d²),
  // and without SDPA the dense K×K score block and its product with V (4·K²·d).
  Cost cost(const CostShape& shape) const override {
    const double b = shape.batch, n = shape.seq_len, d = heads_.d_model, r = router_hidden_;
    // k and k² per sequence and the packed length K at length n.
    double k = expected_fraction_ * n, k_squared = k * k, k_packed = k;
    if (last_routing_) {
      const double stretch = n / last_routing_->seq_len;
      k = last_routing_->mean_routed * stretch;
      k_squared = last_routing_->mean_routed_squared * stretch * stretch;
      k_packed = last_routing_->max_routed * stretch;
    }
    const double router = 2.0 * n * d * r + 4.0 * n * r;
    const double value_output = 4.0 * n * d * d;
    Cost cost;
    cost.matmul_flops = b * (router + 4.0 * k_packed * d * d + value_output +
                             (compat::sdpa_available() ? 0.0 : 4.0 * k_packed * k_packed * d));
    cost.flops = b * (router + 4.0 * k * d * d + value_output + 2.0 * d * (k_squared + k) + n * (2.0 * r + 12.0));
    cost.state_bytes = b * 2.0 * k * d * shape.bytes_per_element;
    return cost;
  }

  bool has_step() const override { return true; }
  // One KV cache per sequence ("key_cache.b", "value_cache.b": [H, routed so far, d_h]), because
  // rows route different numbers of tokens.
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override {
    MixerState state;
    for (int64_t b = 0; b < batch; ++b) {
      state.tensors["key_cache." + std::to_string(b)] = torch::zeros({heads_.n_heads, 0, heads_.head_dim}, options);
      state.tensors["value_cache." + std::to_string(b)] = torch::zeros({heads_.n_heads, 0, heads_.head_dim}, options);
    }
    return state;
  }
  torch::Tensor step(const torch::Tensor& x_t, MixerState& state) override {
    return step_with_residual(x_t, x_t, state);
  }
  torch::Tensor step_with_residual(const torch::Tensor& u_t, const torch::Tensor& h_t,
                                   MixerState& state) override {
    const int64_t batch = u_t.size(0);
    auto p = route(h_t);                                               // [B, 2]
    auto routed = p.select(-1, 0) > threshold_;                        // [B]
    auto [q, k, v] = heads_.project_one(u_t, state.position);          // [B, H, 1, d_h]
    const double scale = 1.0 / std::sqrt(static_cast<double>(heads_.head_dim));
    std::vector<torch::Tensor> rows;
    for (int64_t b = 0; b < batch; ++b) {
      if (!routed[b].item<bool>()) {
        rows.push_back(v[b]);                                          // attention to itself: v_t
        continue;
      }
      auto& keys = state.tensors["key_cache." + std::to_string(b)];
      auto& values = state.tensors["value_cache." + std::to_string(b)];
      keys = torch::cat({keys, k[b]}, 1);
      values = torch::cat({values, v[b]}, 1);
      auto weights = torch::softmax(torch::matmul(q[b], keys.transpose(-2, -1)) * scale, -1);  // [H, 1, T]
      rows.push_back(torch::matmul(weights, values));
    }
    auto mixed = heads_.output(torch::stack(rows, 0)).squeeze(1);     // [B, d]
    state.position += 1;
    return torch::where(routed, p.select(-1, 0), p.select(-1, 1)).unsqueeze(-1) * mixed;
  }

 private:
  // h: [..., d] -> router probabilities [..., 2]
  torch::Tensor route(const torch::Tensor& h) {
    return torch::softmax(router_out_->forward(torch::silu(router_in_->forward(h))), -1);
  }
  // The permutation that puts each row's routed tokens first, both groups in their original order:
  //   slot_t = #routed before t            (t routed)
  //          = k + #bypassed before t      (t bypassed; k = the row's routed count)
  //   order[slot_t] = t.    routed: [B, N] bool, counts: [B] -> order: [B, N] int64
  static torch::Tensor packed_order(const torch::Tensor& routed, const torch::Tensor& counts) {
    auto is_routed = routed.to(torch::kLong);
    auto routed_before = is_routed.cumsum(1) - is_routed;
    auto bypassed_before = (1 - is_routed).cumsum(1) - (1 - is_routed);
    auto slot = torch::where(routed, routed_before, counts.unsqueeze(1) + bypassed_before);
    auto positions = torch::arange(routed.size(1), slot.options()).expand_as(slot);
    return torch::empty_like(slot).scatter_(1, slot, positions);
  }
  torch::Tensor split(const torch::Tensor& t) const {  // [B, N, d] -> [B, H, N, d_h]
    return t.view({t.size(0), t.size(1), heads_.n_heads, heads_.head_dim}).transpose(1, 2);
  }

  MultiHeadProjections heads_;
  int64_t router_hidden_ = 0;
  double threshold_, aux_coef_, expected_fraction_;
  torch::nn::Linear router_in_{nullptr}, router_out_{nullptr};
  torch::Tensor last_aux_loss_;
  // Routing of the last forward: its length, the mean over sequences of k and k², and the largest
  // k (the packed length the products run over).
  struct Routing { double seq_len, mean_routed, mean_routed_squared, max_routed; };
  std::optional<Routing> last_routing_;
};

}  // namespace

const RegisterMixer<DtrNetLayer> kDtrNetLayerRegistration(
    "dtrnet",
    "DTRNet routed layer: routed tokens attend among themselves, the rest get W_O W_V u",
    {
        rope_theta_param(),
        ParamSpec::integer("router_hidden", 0, "router hidden width r; 0 = d_model/2", 0, 65536),
        ParamSpec::real("threshold", 0.5, "token t is routed iff p_t[0] > threshold (1 = none, 0 = all)", 0.0, 1.0),
        ParamSpec::real("aux_coef", 8e-4, "weight λ of the routing loss λ·mean p[0] (released configs: 8e-4)", 0.0),
        ParamSpec::real("expected_routed_fraction", 0.1,
                        "ρ used by cost() before any forward has measured it", 0.0, 1.0),
    },
    validate_heads);

}  // namespace mixlab
