// `swa`: sliding-window causal multi-head attention with RoPE (docs/schemes.md, "Sliding-window attention").
//
//   q_t, k_t, v_t = RoPE(W_q u_t), RoPE(W_k u_t), W_v u_t          (per head, d_h = d/H)
//   o_t = Σ_{j=t-W+1}^{t} softmax_j(q_t·k_j / √d_h) v_j,   y_t = W_o concat_h(o_t)
//
// Window: W keys including the query itself (t-W+1 .. t), as Samba (arXiv 2406.07522, §2).
// Time O(N·(W+b)·d), memory O(N·(W+b)) with query blocks of b (see attention/swa.h); never N×N.
// Inference state: a rolling KV cache of the last min(t, W) keys and values.

#include "attention/swa.h"

#include "attention/kv_cache.h"
#include "attention/multi_head.h"
#include "core/compat.h"
#include "core/implementation.h"
#include "core/register_mixer.h"

#ifdef MIXLAB_WITH_CUDA
#include "attention/cuda/kernels.h"
#endif

#include <algorithm>
#include <cmath>
#include <limits>

namespace mixlab {

SlidingWindowPlan plan_sliding_window(int64_t seq_len, int64_t window, int64_t query_block) {
  TORCH_CHECK(window >= 1, "sliding window: window must be >= 1, got ", window);
  TORCH_CHECK(query_block >= 0, "sliding window: query_block must be >= 0 (0 = auto), got ",
              query_block);
  SlidingWindowPlan plan;
  if (seq_len <= 0) return plan;
  plan.window = std::min(window, seq_len);
  const int64_t b = query_block > 0 ? query_block : std::clamp<int64_t>(plan.window, 32, 256);
  plan.query_block = std::min(b, seq_len);
  plan.n_blocks = (seq_len + plan.query_block - 1) / plan.query_block;
  plan.key_span = plan.window + plan.query_block - 1;
  return plan;
}

double sliding_window_pairs(int64_t seq_len, int64_t window) {
  const double n = static_cast<double>(seq_len), w = static_cast<double>(window);
  if (seq_len <= window) return n * (n + 1) / 2;  // every causal pair
  return w * (w + 1) / 2 + (n - w) * w;           // ramp-up, then W keys per query
}

// Blockwise reference.  Query block i holds t = i·b + r (r < b); its key span is the positions
// j = i·b - W + 1 + c (c < W+b-1), read from K zero-padded by W-1 in front.  Then
//   j ∈ [t-W+1, t]  ⟺  r <= c <= r+W-1     (the same band for every block)
// and the padding is excluded by j >= 0.  Every real query keeps at least itself (c = r+W-1).
torch::Tensor sliding_window_attention(const torch::Tensor& q_in, const torch::Tensor& k_in,
                                       const torch::Tensor& v_in, int64_t window,
                                       int64_t query_block) {
  TORCH_CHECK(q_in.dim() == 4 && k_in.sizes() == q_in.sizes() && v_in.sizes() == q_in.sizes(),
              "sliding_window_attention: q, k, v must all be [B, H, N, d_h]; got ", q_in.sizes(), ", ",
              k_in.sizes(), ", ", v_in.sizes());
#ifdef MIXLAB_WITH_CUDA
  if (cuda::sliding_window_supported(q_in, k_in, v_in)) {
    record_implementation("sliding_window_attention", Implementation::kernel);
    return cuda::sliding_window_attention(q_in, k_in, v_in, window);
  }
#endif
  record_implementation("sliding_window_attention", Implementation::reference);
  const auto dtype = compat::custom_op_dtype({q_in, k_in, v_in});
  const auto q = q_in.to(dtype), k = k_in.to(dtype), v = v_in.to(dtype);
  const int64_t batch = q.size(0), heads = q.size(1), n = q.size(2), head_dim = q.size(3);
  const auto plan = plan_sliding_window(n, window, query_block);
  if (n == 0) return torch::empty_like(q);
  const int64_t b = plan.query_block, w = plan.window, span = plan.key_span;
  const int64_t padded = plan.n_blocks * b;

  // Queries: [B, H, nb, b, d_h].  Keys/values: padded to W-1 + nb·b positions, then unfolded
  // into nb overlapping spans of W+b-1 at stride b: [B, H, nb, d_h, span] (a view).
  auto q_blocks = torch::constant_pad_nd(q, {0, 0, 0, padded - n})
                      .view({batch, heads, plan.n_blocks, b, head_dim});
  auto pad_kv = [&](const torch::Tensor& t) {
    return torch::constant_pad_nd(t, {0, 0, w - 1, padded - n}).unfold(2, span, b);
  };
  auto k_spans = pad_kv(k);                   // [B, H, nb, d_h, span]
  auto v_spans = pad_kv(v).transpose(-2, -1);  // [B, H, nb, span, d_h]

  auto index = torch::TensorOptions().dtype(torch::kLong).device(q.device());
  auto block = torch::arange(plan.n_blocks, index).view({-1, 1, 1});  // i
  auto row = torch::arange(b, index).view({1, -1, 1});                // r
  auto column = torch::arange(span, index).view({1, 1, -1});          // c
  auto allowed = (column >= row) & (column <= row + (w - 1)) &
                 (block * b - (w - 1) + column >= 0);  // [nb, b, span]

  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  auto scores = torch::matmul(q_blocks, k_spans) * scale;  // [B, H, nb, b, span]
  scores = scores.masked_fill(allowed.logical_not(), -std::numeric_limits<double>::infinity());
  const bool reduced = q.scalar_type() == torch::kHalf || q.scalar_type() == torch::kBFloat16;
  auto weights = reduced ? torch::softmax(scores, -1, torch::kFloat).to(q.scalar_type())
                         : torch::softmax(scores, -1);
  auto out = torch::matmul(weights, v_spans);  // [B, H, nb, b, d_h]
  return out.reshape({batch, heads, padded, head_dim}).narrow(2, 0, n);
}

namespace {

class SlidingWindowAttention : public TokenMixer {
 public:
  SlidingWindowAttention(const MixerContext& context, const MixerParams& params)
      : window_(params.integer("window")), query_block_(params.integer("query_block")) {
    heads_.create(*this, context, params.real("rope_theta"));
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    auto [q, k, v] = heads_.project(x);
    return heads_.output(sliding_window_attention(q, k, v, window_, query_block_));
  }

  // flops: projections 8·B·N·d² + 4·d per kept pair (q·k and p·v), P(N,W) = Σ_t min(t+1, W).
  // matmul_flops: projections + the two batched products of the blockwise reference,
  //   2 · 2·B·d · nb·b·(W_eff+b-1)  (padded and masked entries included).
  // state_bytes: the rolling cache, 2·B·min(N,W)·d elements.
  Cost cost(const CostShape& shape) const override {
    const double batch = shape.batch, d = heads_.d_model;
    const auto plan = plan_sliding_window(shape.seq_len, window_, query_block_);
    const double projections = heads_.projection_flops(shape.batch, shape.seq_len);
    Cost cost;
    cost.flops = projections + 4.0 * d * batch * sliding_window_pairs(shape.seq_len, window_);
    cost.matmul_flops =
        projections + 4.0 * d * batch * static_cast<double>(plan.score_entries());
    cost.state_bytes = 2.0 * batch * static_cast<double>(std::min(shape.seq_len, window_)) * d *
                       shape.bytes_per_element;
    return cost;
  }

  bool has_step() const override { return true; }
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override {
    return heads_.empty_kv_cache(batch, options);
  }
  // Single-query attention over the last W keys (the current one included), held in a ring of W
  // slots (attention/kv_cache.h): the newest key overwrites the oldest once the ring is full.
  // Keys keep the RoPE phase of their absolute position, so their order in the ring is free.
  torch::Tensor step(const torch::Tensor& x_t, MixerState& state) override {
    auto [q, k, v] = heads_.project_one(x_t, state.position);  // [B, H, 1, d_h]
    auto& keys = state.tensors.at("key_cache");  // [B, H, min(t+1, W), d_h] after the append
    auto& values = state.tensors.at("value_cache");
    keys = append_to_window(keys, k, state.position, window_);
    values = append_to_window(values, v, state.position, window_);
    const double scale = 1.0 / std::sqrt(static_cast<double>(heads_.head_dim));
    auto weights = torch::softmax(torch::matmul(q, keys.transpose(-2, -1)) * scale, -1);
    state.position += 1;
    return heads_.output(torch::matmul(weights, values)).squeeze(1);
  }

  bool has_static_step() const override { return true; }
  MixerState static_state(int64_t batch, int64_t capacity, const torch::TensorOptions& options) const override {
    auto state = heads_.static_kv_cache(batch, std::min(capacity, window_), options);
    heads_.add_static_constants(state, capacity, options);
    return state;
  }
  // step() on a ring of min(capacity, W) slots: the token goes to slot t mod W; while the ring is
  // filling (t < W) the slots after t are hidden, afterwards every slot holds one of the last W keys.
  torch::Tensor static_step(const torch::Tensor& x_t, MixerState& state, const StepPosition& at) override {
    return output_of(fused_static_step(x_t, {}, state, at));
  }
  bool has_fused_static_step() const override { return true; }
  std::optional<SlotRule> static_slot_rule() const override { return SlotRule{1, window_}; }
  UnprojectedStep fused_static_step(const torch::Tensor& h_t, const InputNorm& norm, MixerState& state,
                                    const StepPosition& at) override {
    auto& keys = state.tensors.at("key_cache");            // [B, H, min(capacity, W), d_h]
    auto& values = state.tensors.at("value_cache");
    const auto slot = at.slot_by(*static_slot_rule());     // t mod W: [1]
    const auto q = heads_.project_into_cache(h_t, at.position, slot, state, keys, values, norm);  // [B, H, 1, d_h]
    const int64_t count = std::min(at.span, keys.size(2));  // slots j ≤ t: every one once t ≥ W
    return heads_.unprojected_output(attend_to_prefix(q, keys, values, count, at.position));
  }
  // The forward, with the last min(N, W) keys and values written to their ring slots t mod W.
  torch::Tensor static_prefill(const torch::Tensor& x, MixerState& state) override {
    auto [q, k, v] = heads_.project(x);  // [B, H, N, d_h]
    const int64_t n = x.size(1), first = std::max<int64_t>(0, n - window_);
    const auto slots = torch::arange(first, n, torch::TensorOptions().dtype(torch::kLong).device(x.device()))
                           .remainder(window_);
    state.tensors.at("key_cache").index_copy_(2, slots, k.narrow(2, first, n - first));
    state.tensors.at("value_cache").index_copy_(2, slots, v.narrow(2, first, n - first));
    return heads_.output(sliding_window_attention(q, k, v, window_, query_block_));
  }

 private:
  int64_t window_;
  int64_t query_block_;
  MultiHeadProjections heads_;
};

}  // namespace

const RegisterMixer<SlidingWindowAttention> kSlidingWindowAttentionRegistration(
    "swa",
    "sliding-window causal attention with RoPE: query t sees keys t-W+1..t",
    {
        ParamSpec::integer("window", 1024, "W: keys each query sees, itself included (t-W+1..t)", 1),
        ParamSpec::integer("query_block", 0,
                           "queries per block of the reference forward (0 = auto: W clamped to "
                           "[32, 256]); sets its memory and masked work",
                           0),
        rope_theta_param()},
    validate_heads);

}  // namespace mixlab
