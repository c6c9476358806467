// `learned_topk`: attention over a learned causal top-k of keys plus a local window
// (docs/learned-topk.md says what is and is not known about the method).
//
//   σ_s      = w_σ · u_s + b_σ                                   light scorer: one importance per token
//   T_t      = top-k of { σ_s : s ≤ t }                          causal: only the prefix competes
//   W_t      = { t−w+1, …, t } ∩ [0, t]                          local window
//   K_t      = T_t ∪ W_t
//   o_t      = Σ_{s ∈ K_t} softmax_s( q_t·k_s/√d_h + β·σ_s ) v_s,   β = 1 (score_bias) or 0
//   y_t      = W_o concat_h(o_t)                                  q, k with RoPE, as `attention`
//
// Selection has no gradient; with score_bias the scorer also shifts the logits of the keys it
// selects, which is how the language-model loss trains it (our choice, see the doc).  With
// k ≥ N every prefix key is selected; with score_bias = false the layer is then `attention`.
// Ties between scores are broken arbitrarily (they have probability zero for continuous inputs).
//
// Reference path: per query, gather the k + w candidate keys ([B, H, N, k+w, d_h]) and mask the
// window keys that the top-k already holds.  Time O(N·(k+w)·d) for attention plus O(N²) score
// comparisons for the selection; state: the full KV cache and the scores (top-k needs them all),
// 2·N·d + N elements.

#include "attention/kv_cache.h"
#include "attention/multi_head.h"
#include "core/init.h"
#include "core/register_mixer.h"

#include <cmath>
#include <limits>

namespace mixlab {
namespace {


// Σ_{t<n} min(t+1, c): the number of (query, key) pairs when each query sees at most c keys.
double capped_pairs(double n, double c) {
  return n <= c ? n * (n + 1) / 2 : c * (c + 1) / 2 + (n - c) * c;
}

class LearnedTopkAttention : public TokenMixer {
 public:
  LearnedTopkAttention(const MixerContext& context, const MixerParams& params)
      : top_k_(params.integer("top_k")), window_(params.integer("window")),
        score_bias_(params.boolean("score_bias")) {
    heads_.create(*this, context, params.real("rope_theta"));
    scorer_ = register_module("scorer", torch::nn::Linear(context.d_model, 1));
    normal_init(scorer_, context.init_std);
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    const int64_t batch = x.size(0), n = x.size(1);
    auto [q, k, v] = heads_.project(x);                                  // [B, H, N, d_h]
    auto scores = scorer_->forward(x).squeeze(-1);                       // [B, N]
    const int64_t kk = std::min(top_k_, n), ww = std::min(window_, n);
    // Top-k over the prefix: future candidates are −∞ and lose.
    auto future = torch::ones({n, n}, x.options().dtype(torch::kBool)).triu(1);
    auto candidates = scores.unsqueeze(1).expand({batch, n, n}).masked_fill(future, kNegativeInfinity);
    auto [top_values, top_index] = candidates.topk(kk, -1);               // [B, N, kk]
    auto top_valid = torch::isfinite(top_values);
    auto queries = torch::arange(n, torch::TensorOptions().dtype(torch::kLong).device(x.device()));
    auto window_index = queries.unsqueeze(1) - (ww - 1) +
                        torch::arange(ww, queries.options()).unsqueeze(0);  // [N, ww]
    auto index = torch::cat({top_index, window_index.clamp_min(0).unsqueeze(0).expand({batch, n, ww})}, -1);
    // A window key already in the top-k (score ≥ the smallest selected score) is masked.
    auto smallest = torch::where(top_valid, top_values, torch::full_like(top_values, -kNegativeInfinity))
                        .amin(-1, true);                                  // [B, N, 1]
    auto window_scores = scores.unsqueeze(1).expand({batch, n, n}).gather(
        2, window_index.clamp_min(0).unsqueeze(0).expand({batch, n, ww}));
    auto window_valid = (window_index >= 0).unsqueeze(0) & (window_scores < smallest);
    auto valid = torch::cat({top_valid, window_valid}, -1);               // [B, N, M]
    return heads_.output(attend(q, k, v, scores, index, valid));
  }

  // matmul_flops: q,k,v,o (8·N·d²), the scorer (2·N·d) and the gathered products q·K_selᵀ and
  // p·V_sel over M = min(k,N) + min(w,N) candidates per query (4·N·M·d, masked ones included).
  // flops: the same with at most min(t+1, k+w) keys per query t (window overlap makes it fewer).
  Cost cost(const CostShape& shape) const override {
    const double b = shape.batch, n = shape.seq_len, d = heads_.d_model;
    const double m = std::min<double>(top_k_, n) + std::min<double>(window_, n);
    const double linear = heads_.projection_flops(shape.batch, shape.seq_len) + 2.0 * b * n * d;
    Cost cost;
    cost.matmul_flops = linear + 4.0 * b * n * m * d;
    cost.flops = linear + 4.0 * b * d * capped_pairs(n, static_cast<double>(top_k_ + window_));
    cost.state_bytes = b * (2.0 * n * d + n) * shape.bytes_per_element;
    return cost;
  }

  bool has_step() const override { return true; }
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override {
    MixerState state = heads_.empty_kv_cache(batch, options);
    state.tensors["score_cache"] = torch::zeros({batch, 0}, options);
    return state;
  }
  torch::Tensor step(const torch::Tensor& x_t, MixerState& state) override {
    const int64_t batch = x_t.size(0), t = state.position, length = t + 1;
    auto [q, k, v] = heads_.project_one(x_t, t);                          // [B, H, 1, d_h]
    auto& keys = state.tensors["key_cache"];
    auto& values = state.tensors["value_cache"];
    auto& scores = state.tensors["score_cache"];
    keys = append_to_cache(keys, k);                                      // [B, H, t+1, d_h]
    values = append_to_cache(values, v);
    scores = torch::cat({scores, scorer_->forward(x_t)}, 1);              // [B, t+1]
    const int64_t kk = std::min(top_k_, length), ww = std::min(window_, length);
    auto [top_values, top_index] = scores.topk(kk, -1);                   // [B, kk]
    auto smallest = top_values.amin(-1, true);
    auto window_index = torch::arange(length - ww, length, top_index.options());  // [ww]
    auto window_valid = scores.index_select(1, window_index) < smallest;  // not already selected
    auto index = torch::cat({top_index, window_index.unsqueeze(0).expand({batch, ww})}, -1).unsqueeze(1);
    auto valid = torch::cat({torch::ones_like(top_index, torch::kBool), window_valid}, -1).unsqueeze(1);
    auto out = attend(q, keys, values, scores, index, valid);             // [B, H, 1, d_h]
    state.position += 1;
    return heads_.output(out).squeeze(1);
  }

 private:
  // q: [B, H, Nq, d_h]; keys, values: [B, H, Nk, d_h]; scores: [B, Nk];
  // index, valid: [B, Nq, M] (which key each of M candidates is, and whether it counts).
  torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& keys, const torch::Tensor& values,
                       const torch::Tensor& scores, const torch::Tensor& index, const torch::Tensor& valid) {
    const int64_t batch = q.size(0), heads = q.size(1), nq = q.size(2), dh = q.size(3), m = index.size(2);
    auto flat = index.reshape({batch, 1, nq * m, 1}).expand({batch, heads, nq * m, dh});
    auto k_sel = keys.gather(2, flat).view({batch, heads, nq, m, dh});
    auto v_sel = values.gather(2, flat).view({batch, heads, nq, m, dh});
    auto logits = torch::matmul(q.unsqueeze(-2), k_sel.transpose(-2, -1)).squeeze(-2) /
                  std::sqrt(static_cast<double>(dh));                     // [B, H, Nq, M]
    if (score_bias_) logits = logits + scores.gather(1, index.reshape({batch, nq * m})).view({batch, 1, nq, m});
    logits = logits.masked_fill(valid.logical_not().unsqueeze(1), kNegativeInfinity);
    auto weights = torch::softmax(logits, -1);
    return torch::matmul(weights.unsqueeze(-2), v_sel).squeeze(-2);      // [B, H, Nq, d_h]
  }

  MultiHeadProjections heads_;
  int64_t top_k_, window_;
  bool score_bias_;
  torch::nn::Linear scorer_{nullptr};
};

}  // namespace

const RegisterMixer<LearnedTopkAttention> kLearnedTopkAttentionRegistration(
    "learned_topk",
    "attention over the causal top-k keys of a learned per-token scorer plus a local window",
    {
        rope_theta_param(),
        ParamSpec::integer("top_k", 64, "keys chosen by the scorer per query (k ≥ N: every prefix key)", 1, 1 << 20),
        ParamSpec::integer("window", 64, "local window w always attended (0 = none)", 0, 1 << 20),
        ParamSpec::boolean("score_bias", true, "add the scorer's value to the selected keys' logits (trains the scorer)"),
    },
    validate_heads);

}  // namespace mixlab
