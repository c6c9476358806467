// `checkpoint_attention`: SCOUT's attention over segment checkpoints (arXiv 2509.00935;
// docs/schemes.md, "SCOUT checkpoint attention").
//
//   q_t, k_t, v_t = RoPE(W_q u_t), RoPE(W_k u_t), W_v u_t          (per head, d_h = d/H)
//   o_t = Σ_{j ∈ {t} ∪ {mS+S-1 < t}} softmax_j(q_t·k_j / √d_h) v_j,   y_t = W_o concat_h(o_t)
//
// "Compression" is sub-sampling K and V at stride S, offset S-1 (docs/schemes.md, SCOUT): the local mixer
// before this layer has already folded each segment into its last token.
// Time O(N·N/S·d); memory O(b·N/S) per query block of b; inference state: the ⌊N/S⌋ checkpoint
// keys and values.
//
// `summary = mean` (TransNeXt's aggregated attention, Shi, "TransNeXt: Robust Foveal Visual
// Perception for Vision Transformers", CVPR 2024, arXiv 2311.17132, §3): each completed segment
// is stood for by the mean of its keys and values instead of its last token,
//   o_t = softmax over {q_t·k_t} ∪ {q_t·k̄_m : mS+S-1 < t},   k̄_m = (1/S) Σ_{j=mS}^{mS+S-1} k_j
// so SCOUT's checkpoint vs pooling is one sweep axis.  What the causal 1D form changes from the
// paper: TransNeXt pools a (non-causal) 2D grid of the whole image, projects the pooled features
// and adds a sliding window to the same softmax; here only completed segments are pooled (after
// projection and RoPE), and the window is the local mixer placed before this layer, as in SCOUT.
// Decoding keeps the running key/value sums of the open segment (2·d more state).
//
// rope_theta defaults to 1e4 like `attention`, so the two entries differ only in their sets of
// keys; SCOUT's released configs use 1e6 (docs/schemes.md, "SCOUT
// checkpoint attention"): set it to reproduce them.

#include "attention/checkpoint_attention.h"

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

int64_t CheckpointPlan::score_entries() const {
  int64_t entries = 0;
  for (int64_t i = 0; i < n_blocks(); ++i)
    entries += (block_end(i) - block_start(i)) * block_checkpoints(i);
  return entries;
}

CheckpointPlan plan_checkpoint_attention(int64_t seq_len, int64_t segment_size,
                                         int64_t query_block) {
  TORCH_CHECK(segment_size >= 1, "checkpoint attention: segment_size must be >= 1, got ",
              segment_size);
  TORCH_CHECK(query_block >= 0, "checkpoint attention: query_block must be >= 0 (0 = auto), got ",
              query_block);
  CheckpointPlan plan;
  plan.segment_size = segment_size;
  plan.seq_len = std::max<int64_t>(seq_len, 0);
  plan.query_block = std::min<int64_t>(query_block > 0 ? query_block : 256, plan.seq_len);
  return plan;
}

double checkpoint_pairs(int64_t seq_len, int64_t segment_size) {
  const double s = static_cast<double>(segment_size);
  const double q = static_cast<double>(seq_len / segment_size);  // whole segments
  const double r = static_cast<double>(seq_len % segment_size);  // tokens of the partial one
  return static_cast<double>(seq_len) + s * q * (q - 1) / 2 + r * q;
}

torch::Tensor segment_summaries(const torch::Tensor& x, int64_t segment_size, int64_t count,
                                SegmentSummary summary) {
  if (summary == SegmentSummary::Token) {
    auto positions = torch::arange(segment_size - 1, count * segment_size, segment_size,
                                   torch::TensorOptions().dtype(torch::kLong).device(x.device()));
    return x.index_select(2, positions);  // x[:, :, S-1 :: S][:count]
  }
  return x.narrow(2, 0, count * segment_size)
      .reshape({x.size(0), x.size(1), count, segment_size, x.size(3)})
      .mean(3);  // (1/S) Σ over each segment
}

// Per query block [t0, t1), with C = ⌊(t1-1)/S⌋ summaries K_c (checkpoints K[S-1 :: S][:C] for
// `token`, segment means for `mean`):
//   L_self[t]    = q_t·k_t / √d_h                                   [B, H, b, 1]
//   L_ckpt[t, c] = q_t·k_{cS+S-1} / √d_h,  -inf where c >= ⌊t/S⌋   [B, H, b, C]
//   P = softmax([L_self ∥ L_ckpt]),  o_t = P[t, 0] v_t + Σ_c P[t, 1+c] v_{cS+S-1}
torch::Tensor checkpoint_attention(const torch::Tensor& q_in, const torch::Tensor& k_in,
                                   const torch::Tensor& v_in, int64_t segment_size,
                                   int64_t query_block, SegmentSummary summary) {
  TORCH_CHECK(q_in.dim() == 4 && k_in.sizes() == q_in.sizes() && v_in.sizes() == q_in.sizes(),
              "checkpoint_attention: q, k, v must all be [B, H, N, d_h]; got ", q_in.sizes(), ", ",
              k_in.sizes(), ", ", v_in.sizes());
#ifdef MIXLAB_WITH_CUDA
  // The kernel reads the checkpoint tokens themselves; pooled (`mean`) summaries have no kernel
  // and run the reference below, on CUDA too.
  if (summary == SegmentSummary::Token && cuda::checkpoint_supported(q_in, k_in, v_in)) {
    record_implementation("checkpoint_attention", Implementation::kernel);
    return cuda::checkpoint_attention(q_in, k_in, v_in, segment_size);
  }
#endif
  record_implementation("checkpoint_attention", Implementation::reference);
  const auto dtype = compat::custom_op_dtype({q_in, k_in, v_in});
  const auto q = q_in.to(dtype), k = k_in.to(dtype), v = v_in.to(dtype);
  const int64_t n = q.size(2), s = segment_size;
  const auto plan = plan_checkpoint_attention(n, s, query_block);
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  const bool reduced = q.scalar_type() == torch::kHalf || q.scalar_type() == torch::kBFloat16;
  auto index = torch::TensorOptions().dtype(torch::kLong).device(q.device());

  // Summaries any query can see: those of segments ending at S-1, 2S-1, ... < N-1.
  const int64_t visible = n > 0 ? (n - 1) / s : 0;
  torch::Tensor k_checkpoints, v_checkpoints;  // [B, H, C, d_h], built once for all blocks
  if (visible > 0) {
    k_checkpoints = segment_summaries(k, s, visible, summary);
    v_checkpoints = segment_summaries(v, s, visible, summary);
  }

  std::vector<torch::Tensor> outputs;
  for (int64_t i = 0; i < plan.n_blocks(); ++i) {
    const int64_t t0 = plan.block_start(i), rows = plan.block_end(i) - t0;
    const int64_t c = plan.block_checkpoints(i);
    auto q_block = q.narrow(2, t0, rows), k_block = k.narrow(2, t0, rows);
    auto v_block = v.narrow(2, t0, rows);
    if (c == 0) {  // the whole block lies in segment 0: each query sees only itself
      outputs.push_back(v_block);
      continue;
    }
    auto self_logit = (q_block * k_block).sum(-1, /*keepdim=*/true) * scale;  // [B, H, b, 1]
    auto checkpoint_logits =
        torch::matmul(q_block, k_checkpoints.narrow(2, 0, c).transpose(-2, -1)) * scale;
    auto seen = torch::div(torch::arange(t0, t0 + rows, index), s, "floor");  // ⌊t/S⌋: [b]
    auto hidden = torch::arange(c, index).unsqueeze(0) >= seen.unsqueeze(1);  // [b, C]
    checkpoint_logits =
        checkpoint_logits.masked_fill(hidden, -std::numeric_limits<double>::infinity());
    auto logits = torch::cat({self_logit, checkpoint_logits}, -1);  // [B, H, b, 1 + C]
    auto weights = reduced ? torch::softmax(logits, -1, torch::kFloat).to(q.scalar_type())
                           : torch::softmax(logits, -1);
    outputs.push_back(weights.narrow(-1, 0, 1) * v_block +
                      torch::matmul(weights.narrow(-1, 1, c), v_checkpoints.narrow(2, 0, c)));
  }
  if (outputs.empty()) return torch::empty_like(q);
  return outputs.size() == 1 ? outputs.front() : torch::cat(outputs, 2);
}

namespace {

class CheckpointAttention : public TokenMixer {
 public:
  CheckpointAttention(const MixerContext& context, const MixerParams& params)
      : segment_size_(params.integer("segment_size")),
        query_block_(params.integer("query_block")),
        summary_(params.text("summary") == "mean" ? SegmentSummary::Mean : SegmentSummary::Token) {
    heads_.create(*this, context, params.real("rope_theta"));
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    auto [q, k, v] = heads_.project(x);
    return heads_.output(checkpoint_attention(q, k, v, segment_size_, query_block_, summary_));
  }

  // flops: projections 8·B·N·d² + 4·d per kept pair (q·k and p·v), Σ_t |A(t)| = Σ_t (1+⌊t/S⌋)
  //        (closed form in checkpoint_pairs); `mean` adds the pooling sums, 2·B·⌊N/S⌋·S·d.
  // matmul_flops: projections + the two checkpoint products of each query block,
  //        2 · 2·B·d · b·⌊(t1-1)/S⌋ (masked entries included); the self term is an elementwise
  //        row dot, not a matrix product.
  // state_bytes: the summary cache, 2·B·⌊N/S⌋·d elements; `mean` also keeps the running key and
  //        value sums of the open segment, 2·B·d.
  Cost cost(const CostShape& shape) const override {
    const double batch = shape.batch, d = heads_.d_model;
    const double projections = heads_.projection_flops(shape.batch, shape.seq_len);
    const auto plan = plan_checkpoint_attention(shape.seq_len, segment_size_, query_block_);
    const double segments = static_cast<double>(shape.seq_len / segment_size_);
    const bool mean = summary_ == SegmentSummary::Mean;
    Cost cost;
    cost.flops = projections + 4.0 * d * batch * checkpoint_pairs(shape.seq_len, segment_size_) +
                 (mean ? 2.0 * batch * segments * segment_size_ * d : 0.0);
    cost.matmul_flops = projections + 4.0 * d * batch * static_cast<double>(plan.score_entries());
    cost.state_bytes = 2.0 * batch * (segments + (mean ? 1.0 : 0.0)) * d * shape.bytes_per_element;
    return cost;
  }

  bool has_step() const override { return true; }
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override {
    MixerState state;
    state.tensors["checkpoint_keys"] = torch::zeros({batch, heads_.n_heads, 0, heads_.head_dim}, options);
    state.tensors["checkpoint_values"] = torch::zeros({batch, heads_.n_heads, 0, heads_.head_dim}, options);
    if (summary_ == SegmentSummary::Mean) {  // Σ k_j, Σ v_j over the open segment
      state.tensors["segment_key_sum"] = torch::zeros({batch, heads_.n_heads, 1, heads_.head_dim}, options);
      state.tensors["segment_value_sum"] = torch::zeros({batch, heads_.n_heads, 1, heads_.head_dim}, options);
    }
    return state;
  }
  // Single-query attention over [summary cache ∥ current token], which is exactly A(t): one
  // softmax over the scores of the m checkpoints and of the token itself, without copying the
  // cache into a concatenation; then the segment's summary joins the cache, in place
  // (attention/kv_cache.h), if the token closes it (t mod S = S-1).
  torch::Tensor step(const torch::Tensor& x_t, MixerState& state) override {
    auto [q, k, v] = heads_.project_one(x_t, state.position);  // [B, H, 1, d_h]
    auto& cached_keys = state.tensors.at("checkpoint_keys");    // [B, H, m, d_h]
    auto& cached_values = state.tensors.at("checkpoint_values");
    const int64_t m = cached_keys.size(2);
    const double scale = 1.0 / std::sqrt(static_cast<double>(heads_.head_dim));
    auto scores = torch::cat({torch::matmul(q, cached_keys.transpose(-2, -1)), (q * k).sum(-1, true)}, -1) * scale;
    auto weights = torch::softmax(scores, -1);                                    // [B, H, 1, m + 1]
    auto attended = torch::matmul(weights.narrow(-1, 0, m), cached_values) + weights.narrow(-1, m, 1) * v;
    const bool closes_segment = state.position % segment_size_ == segment_size_ - 1;
    if (summary_ == SegmentSummary::Token) {
      if (closes_segment) {
        cached_keys = append_to_cache(cached_keys, k);
        cached_values = append_to_cache(cached_values, v);
      }
    } else {
      auto& key_sum = state.tensors.at("segment_key_sum");
      auto& value_sum = state.tensors.at("segment_value_sum");
      key_sum = key_sum + k;
      value_sum = value_sum + v;
      if (closes_segment) {
        cached_keys = append_to_cache(cached_keys, key_sum / static_cast<double>(segment_size_));
        cached_values = append_to_cache(cached_values, value_sum / static_cast<double>(segment_size_));
        key_sum = torch::zeros_like(key_sum);
        value_sum = torch::zeros_like(value_sum);
      }
    }
    state.position += 1;
    return heads_.output(attended).squeeze(1);
  }

  // Static decoding for checkpoint summaries (`token`); the pooled summaries (`mean`) keep step().
  bool has_static_step() const override { return summary_ == SegmentSummary::Token; }
  MixerState static_state(int64_t batch, int64_t capacity, const torch::TensorOptions& options) const override {
    const int64_t slots = (capacity + segment_size_ - 1) / segment_size_;  // one per segment begun
    MixerState state;
    state.tensors["checkpoint_keys"] = torch::zeros({batch, heads_.n_heads, slots, heads_.head_dim}, options);
    state.tensors["checkpoint_values"] = torch::zeros({batch, heads_.n_heads, slots, heads_.head_dim}, options);
    heads_.add_static_constants(state, capacity, options);
    return state;
  }
  // step() on a cache of one slot per segment.  Token t writes its key and value to slot ⌊t/S⌋,
  // then reads slots m ≤ ⌊t/S⌋: the checkpoints (m < ⌊t/S⌋, so mS+S-1 < t) and, in slot ⌊t/S⌋,
  // itself.  The segment's last token (t mod S = S-1) writes last, so once a slot becomes visible
  // to later tokens it holds that segment's checkpoint.  One masked attention, as attention's and
  // swa's static steps (no separate self term).
  torch::Tensor static_step(const torch::Tensor& x_t, MixerState& state, const StepPosition& at) override {
    return output_of(fused_static_step(x_t, {}, state, at));
  }
  bool has_fused_static_step() const override { return summary_ == SegmentSummary::Token; }
  std::optional<SlotRule> static_slot_rule() const override { return SlotRule{segment_size_, 0}; }
  UnprojectedStep fused_static_step(const torch::Tensor& h_t, const InputNorm& norm, MixerState& state,
                                    const StepPosition& at) override {
    TORCH_CHECK(summary_ == SegmentSummary::Token, "checkpoint_attention: static_step needs summary = token");
    auto& keys = state.tensors.at("checkpoint_keys");      // [B, H, ⌈capacity/S⌉, d_h]
    auto& values = state.tensors.at("checkpoint_values");
    const auto segment = at.slot_by(*static_slot_rule());  // ⌊t/S⌋: [1]
    const auto q = heads_.project_into_cache(h_t, at.position, segment, state, keys, values, norm);  // [B, H, 1, d_h]
    const int64_t count = (at.span - 1) / segment_size_ + 1;       // ⌈span/S⌉ ≤ the slots: the most any t < span reads
    return heads_.unprojected_output(attend_to_prefix(q, keys, values, count, at.position, segment_size_));
  }
  // The forward, with slot m holding the key and value of the segment's last token so far,
  // min(mS+S−1, N−1), for each of the ⌈N/S⌉ segments the prompt began.
  torch::Tensor static_prefill(const torch::Tensor& x, MixerState& state) override {
    TORCH_CHECK(summary_ == SegmentSummary::Token, "checkpoint_attention: static_prefill needs summary = token");
    auto [q, k, v] = heads_.project(x);  // [B, H, N, d_h]
    const int64_t n = x.size(1), segments = (n + segment_size_ - 1) / segment_size_;
    const auto last = (torch::arange(segments, torch::TensorOptions().dtype(torch::kLong).device(x.device())) *
                           segment_size_ + (segment_size_ - 1)).clamp_max(n - 1);  // [⌈N/S⌉]
    state.tensors.at("checkpoint_keys").narrow(2, 0, segments).copy_(k.index_select(2, last));
    state.tensors.at("checkpoint_values").narrow(2, 0, segments).copy_(v.index_select(2, last));
    return heads_.output(checkpoint_attention(q, k, v, segment_size_, query_block_, summary_));
  }

 private:
  int64_t segment_size_;
  int64_t query_block_;
  SegmentSummary summary_;
  MultiHeadProjections heads_;
};

}  // namespace

const RegisterMixer<CheckpointAttention> kCheckpointAttentionRegistration(
    "checkpoint_attention",
    "SCOUT checkpoint attention: query t sees itself and the segment ends mS+S-1 < t, one softmax",
    {
        ParamSpec::integer("segment_size", 10,
                           "S: segment length; the last token of each segment is its checkpoint "
                           "(SCOUT's selection_window_size, 10 in its configs)",
                           1),
        ParamSpec::integer("query_block", 0,
                           "queries per block of the reference forward (0 = auto: 256); sets its "
                           "memory and masked work",
                           0),
        ParamSpec::text("summary", "token",
                        "what stands for a completed segment: token = its last token (SCOUT's "
                        "checkpoint), mean = the mean of its keys and values (TransNeXt's pooled tokens)",
                        {"token", "mean"}),
        rope_theta_param()},
    validate_heads);

}  // namespace mixlab
