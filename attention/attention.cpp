// `attention`: causal multi-head softmax attention with RoPE.
//
//   q_t, k_t, v_t = RoPE(W_q u_t), RoPE(W_k u_t), W_v u_t          (per head, d_h = d/H)
//   o_t = Σ_{j<=t} softmax_j(q_t·k_j / √d_h) v_j,   y_t = W_o concat_h(o_t)
//
// Time O(N²·d), memory O(N) with SDPA (LibTorch 2.x) or O(N²) in the explicit LibTorch 1.13 path.
// Inference state: the KV cache, 2·N·d elements per sequence.

#include "attention/kv_cache.h"
#include "attention/multi_head.h"
#include "core/compat.h"
#include "core/register_mixer.h"

namespace mixlab {
namespace {

class CausalAttention : public TokenMixer {
 public:
  CausalAttention(const MixerContext& context, const MixerParams& params) {
    heads_.create(*this, context, params.real("rope_theta"));
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    auto [q, k, v] = heads_.project(x);
    return heads_.output(compat::causal_attention(q, k, v));
  }

  // flops: projections 8·N·d² + the N(N+1)/2 kept pairs at 4·d each (q·k and p·v).
  // matmul_flops: the explicit path computes the dense N×N score block (4·N²·d); with SDPA
  // the core runs inside a fused kernel and issues no separate matrix product.
  Cost cost(const CostShape& shape) const override {
    const double b = shape.batch, n = shape.seq_len, d = heads_.d_model;
    Cost cost;
    cost.flops = heads_.projection_flops(shape.batch, shape.seq_len) + 2.0 * b * d * n * (n + 1);
    cost.matmul_flops = heads_.projection_flops(shape.batch, shape.seq_len) +
                        (compat::sdpa_available() ? 0.0 : 4.0 * b * n * n * d);
    cost.state_bytes = 2.0 * b * n * d * shape.bytes_per_element;
    return cost;
  }

  bool has_step() const override { return true; }
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override {
    return heads_.empty_kv_cache(batch, options);
  }
  // Single-query attention over the cache plus the current token.
  torch::Tensor step(const torch::Tensor& x_t, MixerState& state) override {
    auto [q, k, v] = heads_.project_one(x_t, state.position);  // [B, H, 1, d_h]
    auto& keys = state.tensors["key_cache"];  // [B, H, t+1, d_h] after the append
    auto& values = state.tensors["value_cache"];
    keys = append_to_cache(keys, k);
    values = append_to_cache(values, v);
    const double scale = 1.0 / std::sqrt(static_cast<double>(heads_.head_dim));
    auto weights = torch::softmax(torch::matmul(q, keys.transpose(-2, -1)) * scale, -1);
    state.position += 1;
    return heads_.output(torch::matmul(weights, values)).squeeze(1);
  }

  bool has_static_step() const override { return true; }
  MixerState static_state(int64_t batch, int64_t capacity, const torch::TensorOptions& options) const override {
    auto state = heads_.static_kv_cache(batch, capacity, options);
    heads_.add_static_constants(state, capacity, options);
    return state;
  }
  // step() on a cache of `capacity` slots: the token's key and value go to slot t; the query reads
  // slots j ≤ t of [0, span) (the later ones are not yet written).
  torch::Tensor static_step(const torch::Tensor& x_t, MixerState& state, const StepPosition& at) override {
    return output_of(fused_static_step(x_t, {}, state, at));
  }
  bool has_fused_static_step() const override { return true; }
  UnprojectedStep fused_static_step(const torch::Tensor& h_t, const InputNorm& norm, MixerState& state,
                                    const StepPosition& at) override {
    auto& keys = state.tensors.at("key_cache");            // [B, H, capacity, d_h]
    auto& values = state.tensors.at("value_cache");
    const auto q = heads_.project_into_cache(h_t, at.position, at.position, state, keys, values, norm);  // [B, H, 1, d_h]
    return heads_.unprojected_output(attend_to_prefix(q, keys, values, at.span, at.position));
  }
  // The forward, with the prompt's keys and values written to slots 0 .. N−1.
  torch::Tensor static_prefill(const torch::Tensor& x, MixerState& state) override {
    auto [q, k, v] = heads_.project(x);  // [B, H, N, d_h]
    state.tensors.at("key_cache").narrow(2, 0, x.size(1)).copy_(k);
    state.tensors.at("value_cache").narrow(2, 0, x.size(1)).copy_(v);
    return heads_.output(compat::causal_attention(q, k, v));
  }

 private:
  MultiHeadProjections heads_;
};

}  // namespace

const RegisterMixer<CausalAttention> kCausalAttentionRegistration(
    "attention",
    "causal multi-head softmax attention with RoPE (SDPA where LibTorch has it)",
    {rope_theta_param()},
    validate_heads);

}  // namespace mixlab
