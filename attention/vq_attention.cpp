// `vq_attention`: vector-quantised-key attention, the core of LongVQ (Liu et al., IJCAI 2024,
// arXiv 2404.11163) as Transformer-VQ defines it (Lingle, ICLR 2024, arXiv 2309.16354, §3).
//
// Per head h (d_h = d/H), u: [B, N, d]:
//   q_t = LN₀(W_q u_t) · d_h^{-1/4},  k_t = LN₀(W_k u_t) · d_h^{-1/4}   LN₀: LayerNorm without gain/bias
//   v_t = SiLU(W_v u_t),  g_t = SiLU(W_g u_t) (gated)                     Transformer-VQ §3.1 / §4 (GAU-style)
//   z_t = argmin_s ‖k_t − C_s‖²,  k̂_t = k_t + sg(C_{z_t} − k_t)          codebook C: [S, d_h]  (§3.2, STE)
//   o_t = Σ_{j ≤ t} softmax_j(q_t · k̂_j) v_j                              exact causal softmax over k̂
//   y_t = W_o concat_h(o_t ⊙ g_t)
//
// Linear-time form (Transformer-VQ §3.3, Theorem 3.7): cut the sequence into blocks of L.  A query
// in block n sees the "recent" keys of blocks n−1 and n (exactly, causally masked) and, for every
// older block, only per-code aggregates: the count c_s and value sum U_s of the keys with code s.
// Since every old key *is* a codeword, e^{q·k̂_j} = e^{q·C_s}, and
//   o_t = ( Σ_s e^{q·C_s} U_s + Σ_{recent j} e^{q·k̂_j} v_j ) / ( Σ_s c_s e^{q·C_s} + Σ_{recent j} e^{q·k̂_j} )
// is one softmax over S cache logits q·C_s + log c_s (values U_s/c_s) and ≤ 2L recent logits.  It
// equals the quadratic form above exactly; tests/test_vq_attention.cpp checks it against a per-position loop.
//
// Codebook learning (§3.4, as VQ-VAE-2): commitment loss β·mean‖k − sg(C_z)‖² (auxiliary_loss()), and in
// training mode an EMA of per-code key sums and counts after each forward (no gradient):
//   m_s ← γ m_s + (1−γ) Σ_{z_t = s} k_t,   c̄_s ← γ c̄_s + (1−γ) #{t : z_t = s},   C_s = m_s / c̄_s.
//
// The causal 1D adaptation: Transformer-VQ adds an XL-style relative-position bias to the recent keys
// and LongVQ wraps the layer in a MEGA-style EMA/gate; neither is here (no position signal beyond
// causality, "NoPE"), which is what makes the aggregate cache exact.  Gradients flow through the cache.
// Decode state: the codes and values of the ≤ 2L − 1 recent tokens plus c and U per head — O(S·d_h),
// constant in N.  Time O(N·(S + L)·d).

#include "attention/multi_head.h"
#include "core/init.h"
#include "core/register_mixer.h"

#include <cmath>
#include <limits>

namespace mixlab {
namespace {


class VqAttention : public TokenMixer {
 public:
  VqAttention(const MixerContext& context, const MixerParams& params)
      : codes_(params.integer("n_code")), block_(params.integer("block_len")),
        commit_coef_(params.real("commit_coef")), ema_decay_(params.real("ema_decay")),
        gated_(params.boolean("gated")) {
    heads_.create(*this, context, 1e4);  // q_proj, k_proj, v_proj, o_proj (no RoPE is applied)
    if (gated_) {
      g_proj_ = register_module("g_proj", torch::nn::Linear(torch::nn::LinearOptions(context.d_model, context.d_model).bias(false)));
      normal_init(g_proj_, context.init_std);
    }
    const int64_t H = heads_.n_heads, dh = heads_.head_dim;
    // Codewords start at the scale of the normalised keys: each coordinate ~ N(0, d_h^{-1/2}).
    auto initial = torch::randn({H, codes_, dh}) / std::sqrt(std::sqrt(static_cast<double>(dh)));
    codebook_ = register_buffer("codebook", initial);
    ema_sum_ = register_buffer("ema_sum", initial.clone());
    ema_count_ = register_buffer("ema_count", torch::ones({H, codes_}));
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    const int64_t batch = x.size(0), n = x.size(1), H = heads_.n_heads, dh = heads_.head_dim;
    auto [q, k, v] = project(x);                          // [B, H, N, d_h]
    auto C = codebook_.clone();                           // the EMA below must not touch what autograd saved
    auto [codes, k_hat] = quantise(k, C);                 // [B, H, N], [B, H, N, d_h]
    if (is_training()) {
      last_aux_loss_ = commit_coef_ * (k - k_hat.detach()).square().sum(-1).mean();
      update_codebook(k.detach(), codes);
    } else {
      last_aux_loss_ = torch::Tensor();
    }
    const int64_t L = block_length(n), blocks = (n + L - 1) / L, padded = blocks * L;
    auto pad = [&](const torch::Tensor& t) { return torch::constant_pad_nd(t, {0, 0, 0, padded - n}); };
    auto qb = pad(q).view({batch, H, blocks, L, dh});

    // Aggregate cache for block n: codes and value sums of blocks 0 .. n−2.
    auto one_hot = pad(torch::one_hot(codes, codes_).to(x.scalar_type())).view({batch, H, blocks, L, codes_});
    auto block_counts = one_hot.sum(3);                                               // [B, H, nb, S]
    auto block_sums = torch::matmul(one_hot.transpose(-1, -2), pad(v).view({batch, H, blocks, L, dh}));  // [B, H, nb, S, d_h]
    auto older = [&](const torch::Tensor& per_block) {  // exclusive prefix sum lagging two blocks
      std::vector<int64_t> padding(2 * (per_block.dim() - 3), 0);  // the dims after the block axis
      padding.push_back(2);
      padding.push_back(0);
      return torch::constant_pad_nd(per_block.cumsum(2), padding).narrow(2, 0, blocks);
    };
    auto cache_counts = older(block_counts), cache_sums = older(block_sums);
    auto cache_logits = torch::matmul(qb, C.transpose(-1, -2).unsqueeze(1)) + torch::log(cache_counts).unsqueeze(3);  // [B, H, nb, L, S]

    // Recent keys: blocks n−1 and n, unfolded into spans of 2L at stride L.
    auto span = [&](const torch::Tensor& t) { return torch::constant_pad_nd(t, {0, 0, L, padded - n}).unfold(2, 2 * L, L); };
    auto recent_logits = torch::matmul(qb, span(k_hat));                             // [B, H, nb, L, 2L]
    auto index = torch::TensorOptions().dtype(torch::kLong).device(x.device());
    auto block = torch::arange(blocks, index).view({-1, 1, 1});
    auto row = torch::arange(L, index).view({1, -1, 1}), column = torch::arange(2 * L, index).view({1, 1, -1});
    auto allowed = (column <= row + L) & (block * L - L + column >= 0);               // key (n−1)L + c ≤ query nL + r
    recent_logits = recent_logits.masked_fill(allowed.logical_not(), kNegativeInfinity);

    auto weights = torch::softmax(torch::cat({cache_logits, recent_logits}, -1), -1);
    auto cache_means = cache_sums / cache_counts.clamp_min(1).unsqueeze(-1);         // ν_s = U_s / c_s
    auto out = torch::matmul(weights.narrow(-1, 0, codes_), cache_means) +
               torch::matmul(weights.narrow(-1, codes_, 2 * L), span(v).transpose(-1, -2));  // [B, H, nb, L, d_h]
    return finish(out.reshape({batch, H, padded, dh}).narrow(2, 0, n), x);
  }

  // flops: projections 2·N·d²·(4 + gated); code search 2·N·S·d; cache logits and readout 4·N·S·d;
  // per-block value sums 2·N·S·d (one-hot products); recent pairs 4·d each, Σ_t (t mod L + 1 + L·[t ≥ L]).
  // matmul_flops: the same products on the padded length Np = ⌈N/L⌉·L with whole 2L spans.
  // state_bytes: recent codes (int64) and values of r = N − max(0, (⌊(N−1)/L⌋ − 1)·L) tokens, plus the
  // per-code counts and value sums: B·H·(8r + (r·d_h + S·(1 + d_h))·bytes).
  Cost cost(const CostShape& shape) const override {
    const double b = shape.batch, N = shape.seq_len, d = heads_.d_model, S = codes_;
    const int64_t L = block_length(shape.seq_len);
    const double Np = shape.seq_len > 0 ? std::ceil(N / L) * L : 0;
    const double projections = 2.0 * b * N * d * d * (gated_ ? 5 : 4);
    double recent_pairs = 0;
    for (int64_t t = 0; t < shape.seq_len; ++t) recent_pairs += t % L + 1 + (t >= L ? L : 0);
    Cost cost;
    cost.flops = projections + 2.0 * b * N * S * d + 6.0 * b * N * S * d + 4.0 * d * b * recent_pairs;
    cost.matmul_flops = projections + 2.0 * b * N * S * d + 6.0 * b * Np * S * d + 8.0 * b * Np * L * d;
    const int64_t last_block = shape.seq_len > 0 ? (shape.seq_len - 1) / block_ : 0;
    const double r = shape.seq_len - std::max<int64_t>(0, (last_block - 1) * block_);
    const double H = heads_.n_heads, dh = heads_.head_dim;
    cost.state_bytes = b * H * (8.0 * r + (r * dh + S * (1 + dh)) * shape.bytes_per_element);
    return cost;
  }

  bool has_step() const override { return true; }
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override {
    const int64_t H = heads_.n_heads, dh = heads_.head_dim;
    MixerState state;
    state.tensors["recent_codes"] = torch::zeros({batch, H, 0}, options.dtype(torch::kLong));
    state.tensors["recent_values"] = torch::zeros({batch, H, 0, dh}, options);
    state.tensors["cache_counts"] = torch::zeros({batch, H, codes_}, options);
    state.tensors["cache_value_sums"] = torch::zeros({batch, H, codes_, dh}, options);
    return state;
  }
  // Token t of block m = ⌊t/L⌋: when block m starts (m ≥ 2), block m−2 leaves the recent keys and
  // is folded into the per-code counts and value sums.  Then one softmax over S + recent logits.
  torch::Tensor step(const torch::Tensor& x_t, MixerState& state) override {
    const int64_t t = state.position;
    auto& recent_codes = state.tensors.at("recent_codes");    // [B, H, r]
    auto& recent_values = state.tensors.at("recent_values");  // [B, H, r, d_h]
    auto& counts = state.tensors.at("cache_counts");          // [B, H, S]
    auto& sums = state.tensors.at("cache_value_sums");        // [B, H, S, d_h]
    if (t % block_ == 0 && t / block_ >= 2) {
      auto leaving = torch::one_hot(recent_codes.narrow(2, 0, block_), codes_).to(sums.scalar_type());  // [B, H, L, S]
      counts = counts + leaving.sum(2);
      sums = sums + torch::matmul(leaving.transpose(-1, -2), recent_values.narrow(2, 0, block_));
      const int64_t kept = recent_codes.size(2) - block_;
      recent_codes = recent_codes.narrow(2, block_, kept).contiguous();
      recent_values = recent_values.narrow(2, block_, kept).contiguous();
    }
    auto [q, k, v] = project(x_t.unsqueeze(1));  // [B, H, 1, d_h]
    auto code = quantise(k, codebook_).first;
    recent_codes = torch::cat({recent_codes, code}, 2);
    recent_values = torch::cat({recent_values, v}, 2);
    auto C = codebook_.unsqueeze(0);                                                          // [1, H, S, d_h]
    auto cache_logits = torch::matmul(q, C.transpose(-1, -2)) + torch::log(counts).unsqueeze(2);  // [B, H, 1, S]
    auto recent_keys = codebook_.unsqueeze(0).expand({x_t.size(0), -1, -1, -1})
                           .gather(2, recent_codes.unsqueeze(-1).expand({-1, -1, -1, heads_.head_dim}));
    auto recent_logits = torch::matmul(q, recent_keys.transpose(-1, -2));                     // [B, H, 1, r]
    auto weights = torch::softmax(torch::cat({cache_logits, recent_logits}, -1), -1);
    auto means = sums / counts.clamp_min(1).unsqueeze(-1);
    auto out = torch::matmul(weights.narrow(-1, 0, codes_), means) +
               torch::matmul(weights.narrow(-1, codes_, recent_codes.size(2)), recent_values);  // [B, H, 1, d_h]
    state.position += 1;
    return finish(out, x_t.unsqueeze(1)).squeeze(1);
  }

  torch::Tensor auxiliary_loss() const override { return last_aux_loss_; }

 private:
  // The block length used for N tokens: block_len, or N itself when shorter.
  int64_t block_length(int64_t seq_len) const { return std::max<int64_t>(1, std::min(block_, seq_len)); }

  // u: [B, N, d] -> q, k (LN₀, scaled d_h^{-1/4}), v = SiLU(W_v u): [B, H, N, d_h]
  MultiHeadProjections::Heads project(const torch::Tensor& u) {
    const int64_t batch = u.size(0), n = u.size(1);
    auto split = [&](const torch::Tensor& t) { return t.view({batch, n, heads_.n_heads, heads_.head_dim}).transpose(1, 2); };
    const double scale = 1.0 / std::sqrt(std::sqrt(static_cast<double>(heads_.head_dim)));
    auto ln0 = [&](const torch::Tensor& t) {
      auto centred = t - t.mean(-1, true);
      return centred * torch::rsqrt(centred.square().mean(-1, true) + 1e-6) * scale;
    };
    return {ln0(split(heads_.q_proj->forward(u))), ln0(split(heads_.k_proj->forward(u))),
            split(torch::silu(heads_.v_proj->forward(u)))};
  }

  // k: [B, H, N, d_h], C: [H, S, d_h] -> codes z: [B, H, N] and k̂ = k + sg(C_z − k).
  // ‖k − C_s‖² = ‖k‖² − 2 k·C_s + ‖C_s‖²; the ‖k‖² term does not change the argmin.
  std::pair<torch::Tensor, torch::Tensor> quantise(const torch::Tensor& k, const torch::Tensor& C) {
    auto kd = k.detach();
    auto distance = C.square().sum(-1).unsqueeze(1).unsqueeze(0) - 2.0 * torch::matmul(kd, C.transpose(-1, -2).unsqueeze(0));
    auto codes = distance.argmin(-1);                                                        // [B, H, N]
    const int64_t batch = k.size(0);
    auto chosen = C.unsqueeze(0).expand({batch, -1, -1, -1})
                      .gather(2, codes.unsqueeze(-1).expand({-1, -1, -1, k.size(3)}));       // [B, H, N, d_h]
    return {codes, k + (chosen - kd)};
  }

  // EMA codebook update from the keys of one training forward (per head, over batch and positions).
  void update_codebook(const torch::Tensor& k, const torch::Tensor& codes) {
    torch::NoGradGuard no_grad;
    auto one_hot = torch::one_hot(codes, codes_).to(k.scalar_type());                         // [B, H, N, S]
    auto counts = one_hot.sum(std::vector<int64_t>{0, 2});                                                      // [H, S]
    auto sums = torch::einsum("bhns,bhnd->hsd", {one_hot, k});
    ema_count_.mul_(ema_decay_).add_(counts, 1 - ema_decay_);
    ema_sum_.mul_(ema_decay_).add_(sums, 1 - ema_decay_);
    codebook_.copy_(ema_sum_ / ema_count_.clamp_min(1e-6).unsqueeze(-1));
  }

  // out: [B, H, N, d_h] -> W_o(concat_h(o) ⊙ g) : [B, N, d]
  torch::Tensor finish(const torch::Tensor& out, const torch::Tensor& u) {
    const int64_t batch = out.size(0), n = out.size(2);
    auto merged = out.transpose(1, 2).reshape({batch, n, heads_.d_model});
    if (gated_) merged = merged * torch::silu(g_proj_->forward(u));
    return heads_.o_proj->forward(merged);
  }

  int64_t codes_, block_;
  double commit_coef_, ema_decay_;
  bool gated_;
  MultiHeadProjections heads_;
  torch::nn::Linear g_proj_{nullptr};
  torch::Tensor codebook_, ema_sum_, ema_count_, last_aux_loss_;
};

}  // namespace

const RegisterMixer<VqAttention> kVqAttentionRegistration(
    "vq_attention",
    "LongVQ / Transformer-VQ: vector-quantised keys, block cache, exact linear-time causal softmax",
    {
        ParamSpec::integer("n_code", 64, "codebook size S per head", 1, 1 << 16),
        ParamSpec::integer("block_len", 32, "block length L: the last 1-2 blocks are attended exactly, older ones through per-code aggregates", 1, 1 << 20),
        ParamSpec::real("commit_coef", 1e-4, "β of the commitment loss β·‖k − sg(C_z)‖² (Transformer-VQ c_beta)", 0, 1e3),
        ParamSpec::real("ema_decay", 0.99, "γ of the EMA codebook update in training (Transformer-VQ c_gamma)", 0, 1),
        ParamSpec::boolean("gated", true, "multiply the attention output by SiLU(W_g u) before o_proj (GAU-style, as Transformer-VQ)"),
    },
    validate_heads);

}  // namespace mixlab
