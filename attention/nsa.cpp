// `nsa`: DeepSeek Native Sparse Attention (Yuan et al. 2025, arXiv 2502.11089, §3.2-§3.3): three
// attention branches over independent keys/values, mixed per head by learned gates.
//
// Per head h (d_h = d/H), u: [B, N, d], RoPE on q and on every branch's raw keys:
//   q_t = RoPE(W_q u_t);  k^c_t, v^c_t = RoPE(W^c_k u_t), W^c_v u_t        c ∈ {cmp, slc, win}
//   compression (§3.3.1): blocks of l tokens at stride δ; block i covers [iδ, iδ + l)
//     k̃_i = φ_k( k^cmp_{iδ..iδ+l−1} + pe_k ),  ṽ_i = φ_v( v^cmp_… + pe_v )   φ: Linear(l·d_h → d_h), pe: [l, d_h]
//     query t sees the complete blocks only: iδ + l − 1 ≤ t
//     o^cmp_t = Σ_i p^cmp_{t,i} ṽ_i,   p^cmp_t = softmax_i(q_t·k̃_i/√d_h)   (0 while no block is complete)
//   selection (§3.3.2): blocks of l' tokens; block j covers [jl', (j+1)l')
//     p^slc_{t,j} = Σ_{i : block i overlaps block j} p^cmp_{t,i}          importance from the compression branch
//     I_t = the n blocks j ≤ ⌊t/l'⌋ of highest p^slc, the current, previous and first block forced
//           (priority: current, previous, first, then by score; ties go to the later block)
//     o^slc_t = Σ_{s ∈ I_t blocks, s ≤ t} softmax_s(q_t·k^slc_s/√d_h) v^slc_s
//   window (§3.3.3): o^win_t = Σ_{s=t−w+1}^{t} softmax_s(q_t·k^win_s/√d_h) v^win_s
//   gates: g_t = σ(W_g u_t + b_g): [3, H];   y_t = W_o concat_h( Σ_c g^c_t o^c_t )
//
// The causal 1D adaptation: the paper's Eq. 9 maps compression scores to selection blocks by an
// index formula for l' a multiple of δ; here every compression block that overlaps the selection
// block adds its score (the same blocks when l = l' = δ).  Selection is per head (the paper shares
// it across a GQA group; here each head is its own group), and the selection has no gradient
// (as in the paper; the compression branch trains the scores).
// Time O(N·(N/δ + n·l' + w)·d + H·N·(N/l')·K): quadratic through the compression branch and the
// selection scores (with small constants 1/δ, 1/l').  The reference forward ranks blocks by pairwise
// comparison (deterministic ties, so step() picks the same blocks): H·N·(N/l')² comparisons, not in
// cost(), and the largest CPU term at N = 1024 in the mixer-zoo sweep.  Decode state: full KV of the selection
// branch, the window's KV, the compressed keys/values and the raw tokens not yet compressed.

#include "attention/kv_cache.h"
#include "attention/multi_head.h"
#include "attention/rope_cache.h"
#include "core/init.h"
#include "attention/swa.h"
#include "core/register_mixer.h"

#include <cmath>
#include <limits>

namespace mixlab {
namespace {


struct NsaShape {
  int64_t block, stride, select_block, select_count, window;
  // Compression blocks complete within n tokens: ⌊(n − l)/δ⌋ + 1, or 0.
  int64_t compressed(int64_t n) const { return n >= block ? (n - block) / stride + 1 : 0; }
  int64_t selection_blocks(int64_t n) const { return (n + select_block - 1) / select_block; }
};

// softmax over the `allowed` entries of the last axis; a row with none gives zeros (not NaN).
torch::Tensor masked_softmax(const torch::Tensor& logits, const torch::Tensor& allowed) {
  if (logits.size(-1) == 0) return logits;
  auto masked = logits.masked_fill(allowed.logical_not(), kNegativeInfinity);
  auto top = masked.amax(-1, true).detach();
  auto exps = torch::exp(masked - torch::where(torch::isfinite(top), top, torch::zeros_like(top)));
  auto total = exps.sum(-1, true);
  return exps / torch::where(total > 0, total, torch::ones_like(total));
}

class NativeSparseAttention : public TokenMixer {
 public:
  NativeSparseAttention(const MixerContext& context, const MixerParams& params)
      : s_{params.integer("cmp_block"), params.integer("cmp_stride"), params.integer("select_block"),
           params.integer("select_count"), params.integer("window")} {
    heads_.create(*this, context, params.real("rope_theta"));  // q, o; k_proj, v_proj = the window branch
    const int64_t d = context.d_model, dh = heads_.head_dim;
    auto linear = [&](const char* name, int64_t in, int64_t out, bool bias) {
      auto l = register_module(name, torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias)));
      normal_init(l, context.init_std);
      return l;
    };
    k_cmp_ = linear("k_cmp", d, d, false);
    v_cmp_ = linear("v_cmp", d, d, false);
    k_slc_ = linear("k_slc", d, d, false);
    v_slc_ = linear("v_slc", d, d, false);
    phi_k_ = linear("phi_k", s_.block * dh, dh, true);
    phi_v_ = linear("phi_v", s_.block * dh, dh, true);
    gate_ = linear("gate", d, 3 * heads_.n_heads, true);
    pe_k_ = register_parameter("pe_k", torch::randn({s_.block, dh}) * context.init_std);
    pe_v_ = register_parameter("pe_v", torch::randn({s_.block, dh}) * context.init_std);
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    // RoPE at positions 0 .. N-1, with the tables every rotation and every call share.
    auto rotated = [&](const torch::Tensor& t) {
      const auto tables = rope_tables_cached(t.size(2), heads_.head_dim, heads_.rope_theta, t.options());
      return apply_rope(t, tables.first, tables.second);
    };
    auto q = rotated(split(heads_.q_proj->forward(x)));
    auto k_cmp = rotated(split(k_cmp_->forward(x))), v_cmp = split(v_cmp_->forward(x));
    auto [o_cmp, p_cmp] = compressed_branch(q, compress(k_cmp, phi_k_, pe_k_), compress(v_cmp, phi_v_, pe_v_), 0);
    auto o_slc = selected_branch(q, p_cmp, rotated(split(k_slc_->forward(x))), split(v_slc_->forward(x)), 0);
    auto o_win = sliding_window_attention(q, rotated(split(heads_.k_proj->forward(x))),
                                          split(heads_.v_proj->forward(x)), s_.window);
    return combine(x, o_cmp, o_slc, o_win);
  }

  // flops: projections 16·N·d² and gates 6·N·d·H; φ 4·N_c·l·d_h·d; the compression branch 4·d per
  // (query, complete block) pair; the selection scores 2·H·N·N_s·K (K = overlap_width()); selected attention 4·d per
  // selected key ≤ t, (min(n, ⌊t/l'⌋+1) − 1)·l' + t mod l' + 1 of them; window 4·d per window pair.
  // matmul_flops: the same, with the compression branch dense over all N_c blocks, the selected
  // attention over all n_eff·l' gathered keys, and the window as swa's blockwise reference.
  // state_bytes: 2·d·(N + min(N, w) + N_c + N − N_c·δ) elements per sequence.
  Cost cost(const CostShape& shape) const override {
    const double b = shape.batch, N = shape.seq_len, d = heads_.d_model, H = heads_.n_heads, dh = heads_.head_dim;
    const double Nc = s_.compressed(shape.seq_len), Ns = s_.selection_blocks(shape.seq_len);
    const double gathered = std::min<double>(s_.select_count, Ns) * s_.select_block;
    double cmp_pairs = 0, selected_keys = 0;
    for (int64_t t = 0; t < shape.seq_len; ++t) {
      cmp_pairs += s_.compressed(t + 1);
      selected_keys += (std::min(s_.select_count, t / s_.select_block + 1) - 1) * s_.select_block + t % s_.select_block + 1;
    }
    const auto plan = plan_sliding_window(shape.seq_len, s_.window);
    const double shared = 16.0 * b * N * d * d + 6.0 * b * N * d * H + 4.0 * b * Nc * s_.block * dh * d;
    Cost cost;
    cost.flops = shared + 2.0 * b * H * N * Ns * overlap_width() +
                 4.0 * d * b * (cmp_pairs + selected_keys + sliding_window_pairs(shape.seq_len, s_.window));
    cost.matmul_flops = shared + 4.0 * d * b * (N * Nc + N * gathered + static_cast<double>(plan.score_entries()));
    const double raw = N - Nc * s_.stride;
    cost.state_bytes = 2.0 * b * d * (N + std::min<double>(N, s_.window) + Nc + raw) * shape.bytes_per_element;
    return cost;
  }

  bool has_step() const override { return true; }
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override {
    MixerState state;
    auto empty = torch::zeros({batch, heads_.n_heads, 0, heads_.head_dim}, options);
    for (const char* name : {"cmp_raw_keys", "cmp_raw_values", "cmp_keys", "cmp_values", "slc_keys",
                             "slc_values", "win_keys", "win_values"})
      state.tensors[name] = empty.clone();
    return state;
  }
  // The same branches for one query at position t: a compression block is compressed once it is
  // complete (t = iδ + l − 1), after which the δ raw tokens before the next block are dropped.
  torch::Tensor step(const torch::Tensor& x_t, MixerState& state) override {
    const int64_t t = state.position;
    auto u = x_t.unsqueeze(1);
    auto position = torch::full({1}, t, torch::TensorOptions().dtype(torch::kLong).device(x_t.device()));
    auto q = rotate(split(heads_.q_proj->forward(u)), position);
    auto append = [&](const char* name, const torch::Tensor& value) {  // in place: attention/kv_cache.h
      auto& cache = state.tensors.at(name);
      cache = append_to_cache(cache, value);
      return cache;
    };
    auto raw_k = append("cmp_raw_keys", rotate(split(k_cmp_->forward(u)), position));
    auto raw_v = append("cmp_raw_values", split(v_cmp_->forward(u)));
    if (raw_k.size(2) == s_.block) {  // block i = (t − l + 1)/δ is complete
      append("cmp_keys", compress(raw_k, phi_k_, pe_k_));
      append("cmp_values", compress(raw_v, phi_v_, pe_v_));
      state.tensors["cmp_raw_keys"] = raw_k.narrow(2, s_.stride, s_.block - s_.stride).contiguous();
      state.tensors["cmp_raw_values"] = raw_v.narrow(2, s_.stride, s_.block - s_.stride).contiguous();
    }
    auto [o_cmp, p_cmp] = compressed_branch(q, state.tensors["cmp_keys"], state.tensors["cmp_values"], t);
    auto o_slc = selected_branch(q, p_cmp, append("slc_keys", rotate(split(k_slc_->forward(u)), position)),
                                 append("slc_values", split(v_slc_->forward(u))), t);
    auto& win_k = state.tensors.at("win_keys");
    auto& win_v = state.tensors.at("win_values");
    win_k = append_to_window(win_k, rotate(split(heads_.k_proj->forward(u)), position), t, s_.window);  // a ring of W
    win_v = append_to_window(win_v, split(heads_.v_proj->forward(u)), t, s_.window);
    auto weights = torch::softmax(torch::matmul(q, win_k.transpose(-1, -2)) * scale(), -1);
    state.position += 1;
    return combine(u, o_cmp, o_slc, torch::matmul(weights, win_v)).squeeze(1);
  }

 private:
  double scale() const { return 1.0 / std::sqrt(static_cast<double>(heads_.head_dim)); }
  torch::Tensor split(const torch::Tensor& t) const {  // [B, N, d] -> [B, H, N, d_h]
    return t.view({t.size(0), t.size(1), heads_.n_heads, heads_.head_dim}).transpose(1, 2);
  }
  torch::Tensor rotate(const torch::Tensor& t, const torch::Tensor& positions) const {
    auto [cos, sin] = rope_tables(positions, heads_.head_dim, heads_.rope_theta, t.options());
    return apply_rope(t, cos, sin);
  }

  // raw: [B, H, M, d_h] -> [B, H, ⌊(M − l)/δ⌋ + 1, d_h]: φ(block + pe) for every complete block.
  torch::Tensor compress(const torch::Tensor& raw, torch::nn::Linear& phi, const torch::Tensor& pe) const {
    const int64_t count = s_.compressed(raw.size(2));
    // (With no complete block φ still runs on an empty batch, so its parameters get a zero gradient.)
    auto blocks = (count == 0 ? raw.new_zeros({raw.size(0), raw.size(1), 0, s_.block, heads_.head_dim})
                              : raw.unfold(2, s_.block, s_.stride).transpose(-1, -2)) + pe;  // [B, H, N_c, l, d_h]
    return phi->forward(blocks.reshape({raw.size(0), raw.size(1), count, s_.block * heads_.head_dim}));
  }

  // q: [B, H, Nq, d_h] at positions t0 .., keys/values: [B, H, N_c, d_h] -> o^cmp [B, H, Nq, d_h], p^cmp [B, H, Nq, N_c]
  std::pair<torch::Tensor, torch::Tensor> compressed_branch(const torch::Tensor& q, const torch::Tensor& keys,
                                                            const torch::Tensor& values, int64_t t0) const {
    auto index = torch::TensorOptions().dtype(torch::kLong).device(q.device());
    auto query = torch::arange(t0, t0 + q.size(2), index).unsqueeze(1);
    auto complete = torch::arange(keys.size(2), index).unsqueeze(0) * s_.stride + (s_.block - 1) <= query;  // [Nq, N_c]
    auto p = masked_softmax(torch::matmul(q, keys.transpose(-1, -2)) * scale(), complete);
    return {torch::matmul(p, values), p};
  }

  // p^slc_j = Σ p^cmp_i over the compression blocks i = [iδ, iδ + l) that overlap selection block
  // j = [jl', (j+1)l'): the contiguous run lo_j ≤ i ≤ hi_j, at most K = ⌈(l' + l)/δ⌉ + 1 of them,
  // summed in increasing i.  p_cmp: [B, H, Nq, N_c] -> [B, H, Nq, Ns]
  torch::Tensor selection_importance(const torch::Tensor& p_cmp, int64_t Ns) const {
    const int64_t Nc = p_cmp.size(-1);
    std::vector<int64_t> shape(p_cmp.sizes().begin(), p_cmp.sizes().end());
    shape.back() = Ns;
    if (Nc == 0) return p_cmp.new_zeros(shape);
    auto index = torch::TensorOptions().dtype(torch::kLong).device(p_cmp.device());
    auto j = torch::arange(Ns, index);
    auto lo = (j * s_.select_block - s_.block).div(s_.stride, "floor").add(1).clamp_min(0);
    auto hi = ((j + 1) * s_.select_block - 1).div(s_.stride, "floor").clamp_max(Nc - 1);
    const int64_t K = overlap_width();
    auto i = lo.unsqueeze(1) + torch::arange(K, index);                                 // [Ns, K]
    auto valid = (i <= hi.unsqueeze(1)).to(p_cmp.scalar_type());
    std::vector<int64_t> gathered(p_cmp.sizes().begin(), p_cmp.sizes().end() - 1);
    gathered.push_back(Ns * K);
    auto picked = p_cmp.gather(-1, i.clamp(0, Nc - 1).flatten().expand(gathered));
    gathered.back() = Ns;
    gathered.push_back(K);
    return (picked.view(gathered) * valid).sum(-1);
  }
  int64_t overlap_width() const { return (s_.select_block + s_.block + s_.stride - 1) / s_.stride + 1; }

  // Attention over the tokens of the selected blocks.  keys/values: [B, H, Nk, d_h] for positions 0..Nk−1.
  torch::Tensor selected_branch(const torch::Tensor& q, const torch::Tensor& p_cmp, const torch::Tensor& keys,
                                const torch::Tensor& values, int64_t t0) const {
    const int64_t batch = q.size(0), H = q.size(1), nq = q.size(2), dh = q.size(3), nk = keys.size(2);
    const int64_t Ns = s_.selection_blocks(nk), lp = s_.select_block, chosen = std::min(s_.select_count, Ns);
    auto index = torch::TensorOptions().dtype(torch::kLong).device(q.device());
    auto j = torch::arange(Ns, index);
    auto importance = selection_importance(p_cmp.detach(), Ns);                       // [B, H, Nq, Ns]
    auto query = torch::arange(t0, t0 + nq, index).unsqueeze(1);                       // [Nq, 1]
    auto current = query.div(lp, "floor");
    auto forced = (j == 0) | (j == current) | (j == current - 1);                     // [Nq, Ns]
    auto priority = importance.masked_fill(forced, std::numeric_limits<double>::infinity())
                        .masked_fill(j > current, kNegativeInfinity);
    // rank_j = #{j' ahead of j}: higher priority, or equal priority and later block.
    auto a = priority.unsqueeze(-1), other = priority.unsqueeze(-2);                  // [.., Ns, 1], [.., 1, Ns]
    auto ahead = (other > a) | ((other == a) & (j.unsqueeze(0) > j.unsqueeze(1)));
    auto rank = ahead.sum(-1);                                                         // [B, H, Nq, Ns]
    auto picked = std::get<1>(rank.neg().topk(chosen, -1));                            // [B, H, Nq, n_eff]
    auto block_valid = priority.gather(-1, picked) > kNegativeInfinity;               // [B, H, Nq, n_eff]
    auto tokens = (picked.unsqueeze(-1) * lp + torch::arange(lp, index)).flatten(-2);  // [B, H, Nq, n_eff·l']
    auto allowed = block_valid.repeat_interleave(lp, -1) & (tokens <= query.unsqueeze(0).unsqueeze(0));
    const int64_t m = tokens.size(-1);
    auto padded_k = torch::constant_pad_nd(keys, {0, 0, 0, Ns * lp - nk});
    auto padded_v = torch::constant_pad_nd(values, {0, 0, 0, Ns * lp - nk});
    auto flat = tokens.reshape({batch, H, nq * m, 1}).expand({batch, H, nq * m, dh});
    auto k_sel = padded_k.gather(2, flat).view({batch, H, nq, m, dh});
    auto v_sel = padded_v.gather(2, flat).view({batch, H, nq, m, dh});
    auto logits = torch::matmul(q.unsqueeze(-2), k_sel.transpose(-1, -2)).squeeze(-2) * scale();  // [B, H, Nq, m]
    auto weights = masked_softmax(logits, allowed);
    return torch::matmul(weights.unsqueeze(-2), v_sel).squeeze(-2);
  }

  // u: [B, N, d]; branch outputs [B, H, N, d_h] -> W_o concat_h(Σ_c g^c o^c)
  torch::Tensor combine(const torch::Tensor& u, const torch::Tensor& o_cmp, const torch::Tensor& o_slc,
                        const torch::Tensor& o_win) {
    auto g = torch::sigmoid(gate_->forward(u)).view({u.size(0), u.size(1), 3, heads_.n_heads})
                 .permute({2, 0, 3, 1}).unsqueeze(-1);  // [3, B, H, N, 1]
    return heads_.output(g[0] * o_cmp + g[1] * o_slc + g[2] * o_win);
  }

  NsaShape s_;
  MultiHeadProjections heads_;
  torch::nn::Linear k_cmp_{nullptr}, v_cmp_{nullptr}, k_slc_{nullptr}, v_slc_{nullptr}, phi_k_{nullptr},
      phi_v_{nullptr}, gate_{nullptr};
  torch::Tensor pe_k_, pe_v_;
};

void validate_nsa(const MixerContext& context, const MixerParams& params) {
  validate_heads(context, params);
  const int64_t block = params.integer("cmp_block"), stride = params.integer("cmp_stride");
  if (stride > block || block % stride != 0)
    throw RegistryError("nsa: cmp_stride δ (" + std::to_string(stride) + ") must divide cmp_block l (" +
                        std::to_string(block) + "), as the paper requires (δ | l)");
}

}  // namespace

const RegisterMixer<NativeSparseAttention> kNativeSparseAttentionRegistration(
    "nsa",
    "DeepSeek Native Sparse Attention: gated compression + top-n block selection + sliding window",
    {
        rope_theta_param(),
        ParamSpec::integer("cmp_block", 8, "l: tokens per compression block (paper 32)", 1, 1 << 16),
        ParamSpec::integer("cmp_stride", 4, "δ: stride between compression blocks, divides l (paper 16)", 1, 1 << 16),
        ParamSpec::integer("select_block", 8, "l': tokens per selection block (paper 64)", 1, 1 << 16),
        ParamSpec::integer("select_count", 4, "n: blocks selected per query, the current, previous and first included (paper 16)", 1, 1 << 16),
        ParamSpec::integer("window", 32, "w: sliding-window keys, the query included (paper 512)", 1, 1 << 20),
    },
    validate_nsa);

}  // namespace mixlab
