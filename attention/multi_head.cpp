#include "attention/multi_head.h"

#include "attention/kv_cache.h"
#include "attention/rope_cache.h"
#include "core/init.h"
#include "core/skinny_linear.h"

namespace mixlab {

void MultiHeadProjections::create(torch::nn::Module& owner, const MixerContext& context,
                                  double theta) {
  d_model = context.d_model;
  n_heads = context.n_heads;
  head_dim = d_model / n_heads;
  rope_theta = theta;
  auto make = [&](const char* name) {
    auto linear = owner.register_module(
        name, torch::nn::Linear(torch::nn::LinearOptions(d_model, d_model).bias(false)));
    normal_init(linear, context.init_std);
    return linear;
  };
  q_proj = make("q_proj");
  k_proj = make("k_proj");
  v_proj = make("v_proj");
  o_proj = make("o_proj");
}

MultiHeadProjections::Heads MultiHeadProjections::project(const torch::Tensor& x,
                                                          const torch::Tensor& positions) {
  // positions 0 .. N-1 (undefined): the tables every layer and call share
  const auto [cos, sin] = positions.defined() ? rope_tables(positions, head_dim, rope_theta, x.options())
                                              : rope_tables_cached(x.size(1), head_dim, rope_theta, x.options());
  return project_with(x, cos, sin);
}

void MultiHeadProjections::add_static_constants(MixerState& state, int64_t capacity,
                                                const torch::TensorOptions& options) const {
  torch::NoGradGuard no_grad;
  const auto qkv_weight = torch::cat({q_proj->weight, k_proj->weight, v_proj->weight}, 0);  // [3·H·d_h, d]
  if (pairs_rope_halves())
    state.constants["qkv_pairs"] = pair_rope_halves(qkv_weight, n_heads, head_dim).to(options);
  else
    state.constants["qkv_weight"] = qkv_weight.to(options);
  auto positions = torch::arange(capacity, torch::TensorOptions().dtype(torch::kLong).device(options.device()));
  auto [cos, sin] = rope_tables(positions, head_dim, rope_theta, options);  // [capacity, d_h]
  state.constants["rope_cos"] = cos;
  state.constants["rope_sin"] = sin;
}

torch::Tensor MultiHeadProjections::project_into_cache(const torch::Tensor& x_t, const torch::Tensor& position,
                                                       const torch::Tensor& slot, const MixerState& state,
                                                       torch::Tensor& keys, torch::Tensor& values,
                                                       const InputNorm& norm) const {
  const auto& constants = state.constants;
  const auto &cos = constants.at("rope_cos"), &sin = constants.at("rope_sin");
  if (pairs_rope_halves())
    return rope_linear_into_cache(x_t, constants.at("qkv_pairs"), n_heads, position, cos, sin, slot, keys, values, norm);
  const int64_t batch = x_t.size(0);
  const auto qkv = skinny_linear(x_t, constants.at("qkv_weight"), {}, norm).view({batch, 3, n_heads, 1, head_dim});  // [B, 3, H, 1, d_h]
  return rope_into_cache(qkv, position, cos, sin, slot, keys, values);
}

// q, k, v of x: [B, N, d] with RoPE rows cos, sin: [N, d_h].  The three projections are one
// product with the stacked weight [W_q; W_k; W_v] ([3d, d], as the static decode step does):
//   [q | k | v] = x [W_q; W_k; W_v]ᵀ
// one matrix product forward and two backward where three and six ran (and autograd's two sums of
// the three dL/dx); q, k, v are views of its [B, N, 3, H, d_h] output.  They are taken by one
// unbind, whose backward stacks dq, dk, dv into dL/d[q|k|v] in one pass; three selects would
// each build a zero gradient of the whole product and autograd would add the three.
MultiHeadProjections::Heads MultiHeadProjections::project_with(const torch::Tensor& x, const torch::Tensor& cos,
                                                               const torch::Tensor& sin) {
  const int64_t batch = x.size(0), n = x.size(1);
  const auto weight = torch::cat({q_proj->weight, k_proj->weight, v_proj->weight}, 0);  // [3d, d]
  const auto qkv = torch::linear(x, weight).view({batch, n, 3, n_heads, head_dim}).unbind(2);  // 3 x [B, N, H, d_h]
  Heads heads;
  heads.q = apply_rope(qkv[0].transpose(1, 2), cos, sin);  // [B, H, N, d_h]
  heads.k = apply_rope(qkv[1].transpose(1, 2), cos, sin);
  heads.v = qkv[2].transpose(1, 2);
  return heads;
}

MultiHeadProjections::Heads MultiHeadProjections::project_one(const torch::Tensor& x_t,
                                                              int64_t position) {
  auto pos = torch::full({1}, position, torch::TensorOptions().dtype(torch::kLong).device(x_t.device()));
  return project(x_t.unsqueeze(1), pos);
}

MixerState MultiHeadProjections::empty_kv_cache(int64_t batch, const torch::TensorOptions& options) const {
  MixerState state;
  state.tensors["key_cache"] = torch::zeros({batch, n_heads, 0, head_dim}, options);
  state.tensors["value_cache"] = torch::zeros({batch, n_heads, 0, head_dim}, options);
  return state;
}

MixerState MultiHeadProjections::static_kv_cache(int64_t batch, int64_t slots,
                                                 const torch::TensorOptions& options) const {
  MixerState state;
  state.tensors["key_cache"] = torch::zeros({batch, n_heads, slots, head_dim}, options);
  state.tensors["value_cache"] = torch::zeros({batch, n_heads, slots, head_dim}, options);
  return state;
}

// One token per sequence (a decode step) through skinny_linear, which runs o_proj's product as
// the few-row kernel where it applies and as o_proj's own product elsewhere.
torch::Tensor MultiHeadProjections::output(const torch::Tensor& heads) {
  const int64_t batch = heads.size(0), n = heads.size(2);
  const auto merged = heads.transpose(1, 2).reshape({batch, n, d_model});  // [B, N, d]
  if (n == 1) return output_of(unprojected_output(heads)).unsqueeze(1);
  return o_proj->forward(merged);
}

UnprojectedStep MultiHeadProjections::unprojected_output(const torch::Tensor& heads) const {
  TORCH_CHECK(heads.dim() == 4 && heads.size(2) == 1, "unprojected_output takes one token's heads [B, H, 1, d_h]; got ",
              heads.sizes());
  const auto merged = heads.transpose(1, 2).reshape({heads.size(0), d_model});  // [B, d]
  return {merged, o_proj->weight, o_proj->bias};
}

ParamSpec rope_theta_param(double default_theta) {
  return ParamSpec::real("rope_theta", default_theta,
                         "RoPE base theta (rotate-half convention); SCOUT/Qwen2 use 1e6", 1.0);
}

void validate_heads(const MixerContext& context, const MixerParams&) {
  if (context.d_model % context.n_heads != 0)
    throw RegistryError("d_model (" + std::to_string(context.d_model) +
                        ") must be divisible by n_heads (" + std::to_string(context.n_heads) + ")");
  if ((context.d_model / context.n_heads) % 2 != 0)
    throw RegistryError("head dimension d_model/n_heads = " +
                        std::to_string(context.d_model / context.n_heads) +
                        " must be even for RoPE");
}

}  // namespace mixlab
