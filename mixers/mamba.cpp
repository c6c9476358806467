// `mamba`: the Mamba-1 block (Gu & Dao, arXiv 2312.00752, §3.2–3.4), u: [B, N, d] -> [B, N, d].
//
//   [x, z]       = in_proj(u)                                  d -> 2E, no bias      (E = expand·d)
//   x            = SiLU( causal_depthwise_conv_K(x) + b_conv )  [B, E, N], left padding K−1
//   [δ, B̃, C̃]    = x_proj(x)                                   E -> R + n + n, no bias
//   Δ            = softplus( W_dt δ + b_dt )                    dt_proj: R -> E, with bias
//   A            = −exp(A_log)                                 [E, n]
//   h_t[e,:]     = exp(Δ_t[e] A[e,:]) ⊙ h_{t−1}[e,:] + Δ_t[e] x_t[e] B̃_t
//   y_t[e]       = < h_t[e,:], C̃_t > + D[e] x_t[e]
//   out          = out_proj( y ⊙ SiLU(z) )                     E -> d, no bias
//
// The lines from Δ to the gate are selective_scan() (mixers/selective_scan.h; the CUDA kernel on
// the GPU).  Time O(N·E·n), no quadratic term.  Inference state per sequence: the last K−1 conv
// inputs [E, K−1] and the SSM state [E, n].
//
// Weight names as state-spaces/mamba and HF MambaMixer: in_proj.weight [2E, d],
// conv1d.weight [E, 1, K], conv1d.bias [E], x_proj.weight [R+2n, E], dt_proj.weight [E, R],
// dt_proj.bias [E], A_log [E, n], D [E], out_proj.weight [d, E].
// Parameters: 3·E·d + E·(K + 2R + 3n + 3).
//
// Initialisation as the paper's code: A_log[e, j] = log(j+1) (S4D-real), D = 1,
// dt_proj.weight ~ U(±R^−½), dt_proj.bias = softplus⁻¹(dt) with dt log-uniform in
// [dt_min, dt_max] clamped at dt_init_floor; in_proj, x_proj, out_proj ~ N(0, init_std) (HF /
// SCOUT); conv1d keeps LibTorch's default (kaiming-uniform, as mamba_simple leaves it).  The
// model-level out_proj rescaling by 1/√(n_layer) of mixer_seq_simple is not applied.

#include "core/init.h"
#include "core/register_mixer.h"
#include "core/registry.h"
#include "core/skinny_linear.h"
#include "mixers/causal_depthwise_conv.h"
#include "mixers/linear_conv_step.h"
#include "mixers/selective_scan.h"

#include <algorithm>
#include <cmath>

namespace mixlab {
namespace {

struct MambaShape {
  int64_t d_model, inner, d_state, d_conv, dt_rank;
};

MambaShape mamba_shape(const MixerContext& context, const MixerParams& params) {
  MambaShape shape;
  shape.d_model = context.d_model;
  shape.inner = static_cast<int64_t>(params.real("expand") * static_cast<double>(context.d_model));
  shape.d_state = params.integer("d_state");
  shape.d_conv = params.integer("d_conv");
  const int64_t rank = params.integer("dt_rank");
  shape.dt_rank = rank > 0 ? rank : (context.d_model + 15) / 16;  // "auto" = ⌈d/16⌉
  return shape;
}

class Mamba : public TokenMixer {
 public:
  Mamba(const MixerContext& context, const MixerParams& params) : shape_(mamba_shape(context, params)) {
    const int64_t d = shape_.d_model, E = shape_.inner, n = shape_.d_state, K = shape_.d_conv,
                  R = shape_.dt_rank;
    auto linear = [&](const char* name, int64_t in, int64_t out, bool bias) {
      return register_module(name, torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias)));
    };
    in_proj_ = linear("in_proj", d, 2 * E, false);
    conv1d_ = register_module(
        "conv1d", torch::nn::Conv1d(torch::nn::Conv1dOptions(E, E, K).groups(E).bias(true)));
    x_proj_ = linear("x_proj", E, R + 2 * n, false);
    dt_proj_ = linear("dt_proj", R, E, true);
    out_proj_ = linear("out_proj", E, d, false);
    A_log_ = register_parameter("A_log", torch::log(torch::arange(1, n + 1, torch::kFloat)).repeat({E, 1}));
    D_ = register_parameter("D", torch::ones({E}));

    torch::NoGradGuard no_grad;
    normal_init(in_proj_, context.init_std);
    normal_init(x_proj_, context.init_std);
    normal_init(out_proj_, context.init_std);
    const double dt_init_std = 1.0 / std::sqrt(static_cast<double>(R));  // dt_scale = 1
    dt_proj_->weight.uniform_(-dt_init_std, dt_init_std);
    dt_proj_->bias.copy_(sample_dt_bias(E, params.real("dt_min"), params.real("dt_max"),
                                        params.real("dt_init_floor")));
  }

  // x: [B, N, d] -> [B, N, d]
  torch::Tensor forward(const torch::Tensor& x) override {
    const auto in = scan_inputs(x);
    auto y = selective_scan(in.u, in.delta, -torch::exp(A_log_), in.B, in.C, D_, in.gate, dt_proj_->bias);
    return out_proj_(y.transpose(1, 2));
  }

  // flops: projections 2·N·(2Ed + E(R+2n) + RE + Ed); depthwise conv 2·N·E·K; scan 8·N·E·n
  // (per token, channel and state: ΔA, exp, Δx·B̃, the state multiply-add, the C̃ multiply-add =
  // 7, plus 1 for the per-channel softplus and Δ·x spread over n); D skip and SiLU(z) gate
  // 6·N·E.  matmul_flops: the four projections plus the readout <h_t, C̃_t>, which the reference
  // scan issues as one batched matrix-vector product (2·N·E·n); the depthwise conv runs as a
  // grouped convolution, not a matrix product.
  // state_bytes: what step() holds, the K−1 last conv inputs in the model dtype and the SSM state
  // in float32 (float64 for float64 models).
  Cost cost(const CostShape& shape) const override {
    const double tokens = static_cast<double>(shape.batch) * shape.seq_len;
    const double d = shape_.d_model, E = shape_.inner, n = shape_.d_state, K = shape_.d_conv,
                 R = shape_.dt_rank;
    const double projections = 2.0 * tokens * (2 * E * d + E * (R + 2 * n) + R * E + E * d);
    Cost cost;
    cost.matmul_flops = projections + 2.0 * tokens * E * n;
    cost.flops = projections + 2.0 * tokens * E * K + 8.0 * tokens * E * n + 6.0 * tokens * E;
    const double ssm_bytes = std::max<int64_t>(shape.bytes_per_element, 4);
    cost.state_bytes = shape.batch * E * ((K - 1) * shape.bytes_per_element + n * ssm_bytes);
    return cost;
  }

  bool has_step() const override { return true; }
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override {
    const auto ssm_type = options.dtype() == torch::kDouble ? torch::kDouble : torch::kFloat;
    MixerState state;
    state.tensors["conv_state"] = torch::zeros({batch, shape_.inner, shape_.d_conv - 1}, options);
    state.tensors["ssm_state"] = torch::zeros({batch, shape_.inner, shape_.d_state}, options.dtype(ssm_type));
    return state;
  }
  // x_t: [B, d] -> [B, d]
  torch::Tensor step(const torch::Tensor& x_t, MixerState& state) override {
    auto y = advance(x_t, state.tensors.at("conv_state"), state.tensors.at("ssm_state"), -torch::exp(A_log_), D_,
                     dt_proj_->bias);
    state.position += 1;
    return skinny_linear(y, out_proj_->weight, out_proj_->bias);
  }

  // The forward, and the state after it: the last K−1 conv inputs and the scan's final state
  // (selective_scan_with_final_state: the kernel's last saved state on CUDA, else the closed form).
  torch::Tensor static_prefill(const torch::Tensor& x, MixerState& state) override {
    const int64_t K = shape_.d_conv, n = x.size(1);
    const auto in = scan_inputs(x);
    const auto A = -torch::exp(A_log_);
    state.tensors.at("conv_state").copy_(torch::constant_pad_nd(in.x_inner, {K - 1, 0}).narrow(-1, n, K - 1));
    auto [y, final_state] = selective_scan_with_final_state(in.u, in.delta, A, in.B, in.C, D_, in.gate, dt_proj_->bias);
    state.tensors.at("ssm_state").copy_(final_state);
    return out_proj_(y.transpose(1, 2));
  }

  // The state has a fixed shape and the step does not read the position.  The session's constants
  // are A = −exp(A_log), D and the Δ bias in the SSM state's dtype, so the step computes and casts
  // none of them; the new conv and SSM states are copied into the preallocated ones.
  bool has_static_step() const override { return true; }
  MixerState static_state(int64_t batch, int64_t, const torch::TensorOptions& options) const override {
    MixerState state = initial_state(batch, options);
    const auto ssm_type = state.tensors.at("ssm_state").scalar_type();
    torch::NoGradGuard no_grad;
    state.constants["A"] = (-torch::exp(A_log_)).to(ssm_type);
    state.constants["D"] = D_.to(ssm_type);
    state.constants["dt_bias"] = dt_proj_->bias.to(ssm_type);
    return state;
  }
  torch::Tensor static_step(const torch::Tensor& x_t, MixerState& state, const StepPosition& at) override {
    return output_of(fused_static_step(x_t, {}, state, at));
  }
  // y before out_proj: [B, E], with out_proj's weight and bias.
  bool has_fused_static_step() const override { return true; }
  UnprojectedStep fused_static_step(const torch::Tensor& h_t, const InputNorm& norm, MixerState& state,
                                    const StepPosition&) override {
    torch::Tensor conv_state = state.tensors.at("conv_state"), ssm_state = state.tensors.at("ssm_state");
    const auto& constants = state.constants;
    auto y = advance(h_t, conv_state, ssm_state, constants.at("A"), constants.at("D"), constants.at("dt_bias"), norm);
    state.tensors.at("conv_state").copy_(conv_state);
    state.tensors.at("ssm_state").copy_(ssm_state);
    return {y, out_proj_->weight, out_proj_->bias};
  }

 private:
  // One token up to out_proj: x_t: [B, d] -> y: [B, E], with conv_state [B, E, K−1] and ssm_state
  // [B, E, n] replaced by the next ones (in place where the CUDA step kernels run) and A = −exp(A_log),
  // D and the Δ bias as given.  With a norm, x_t is h_t, normalised by in_proj's product.
  torch::Tensor advance(const torch::Tensor& x_t, torch::Tensor& conv_state, torch::Tensor& ssm_state,
                        const torch::Tensor& A, const torch::Tensor& D, const torch::Tensor& dt_bias,
                        const InputNorm& norm = {}) {
    const int64_t E = shape_.inner, n = shape_.d_state, R = shape_.dt_rank;
    // The products through skinny_linear: the few-row kernel on CUDA where it applies (bf16, no
    // gradient), else the modules' own product.
    // xz = x W_inᵀ: [B, 2E]; u = SiLU(conv step of its x half): [B, E], the conv state shifted
    // (mixers/linear_conv_step.h: one kernel on CUDA)
    auto [xz, u] = linear_conv_step(x_t, in_proj_->weight, in_proj_->bias, conv_state, conv1d_->weight, conv1d_->bias,
                                    norm);
    auto gate = xz.narrow(-1, E, E);
    auto projected = skinny_linear(u, x_proj_->weight, x_proj_->bias);        // [B, R + 2n]
    // Δ's pre-activation δ W_dtᵀ is formed by the step itself (one kernel on CUDA)
    return selective_scan_step(ssm_state, u, projected.narrow(-1, 0, R), A, projected.narrow(-1, R, n),
                               projected.narrow(-1, R + n, n), D, gate, dt_bias, dt_proj_->weight);
  }

  // What the scan reads, from x: [B, N, d] (the lines above selective_scan in the header).
  struct ScanInputs {
    torch::Tensor x_inner, gate, u, delta, B, C;  // x, z, u, W_dt δ: [B, E, N]; B̃, C̃: [B, n, N]
  };
  // The products after the convolution are written in the scan's layout, channels before time
  // ([B, ·, N]), as W · u per sequence (a batched product with W broadcast), so that u, Δ and the
  // scan's B̃, C̃ need no transposed copies; the convolution and its SiLU are one op
  // (causal_conv_silu: on CUDA a kernel that reads x in place from xz and writes u as [B, E, N];
  // elsewhere conv1d padded inside, K−1 zeros each side with the first N outputs kept, and SiLU).
  ScanInputs scan_inputs(const torch::Tensor& x) {
    const int64_t batch = x.size(0), E = shape_.inner, n = shape_.d_state, R = shape_.dt_rank;
    ScanInputs in;
    auto xz = in_proj_(x);                                                 // [B, N, 2E]
    in.x_inner = xz.narrow(-1, 0, E).transpose(1, 2);                      // [B, E, N]
    in.gate = xz.narrow(-1, E, E).transpose(1, 2);                         // z: [B, E, N]
    // u = SiLU(conv(x) + b_conv), read from xz in place (mixers/causal_depthwise_conv.h)
    in.u = causal_conv_silu(xz.narrow(-1, 0, E), conv1d_->weight, conv1d_->bias);  // [B, E, N]
    // W as the batch's operand: cast to the activations' dtype first (autocast would otherwise cast
    // the expanded [B, ·, ·] view, materialising it), then broadcast over the batch as a view.
    auto per_sequence = [batch](const torch::Tensor& w, const torch::Tensor& like) {
      return w.to(like.scalar_type()).unsqueeze(0).expand({batch, w.size(0), w.size(1)});
    };
    auto projected = torch::bmm(per_sequence(x_proj_->weight, in.u), in.u);  // [B, R + 2n, N]
    in.B = projected.narrow(1, R, n);                                      // B̃: [B, n, N]
    in.C = projected.narrow(1, R + n, n);                                  // C̃: [B, n, N]
    // W_dt δ without the bias: the scan adds it before the softplus.
    in.delta = torch::bmm(per_sequence(dt_proj_->weight, projected), projected.narrow(1, 0, R));  // [B, E, N]
    return in;
  }

  MambaShape shape_;
  torch::nn::Linear in_proj_{nullptr}, x_proj_{nullptr}, dt_proj_{nullptr}, out_proj_{nullptr};
  torch::nn::Conv1d conv1d_{nullptr};
  torch::Tensor A_log_, D_;
};

void validate_mamba(const MixerContext& context, const MixerParams& params) {
  if (params.real("dt_min") > params.real("dt_max"))
    throw RegistryError("mamba: dt_min (" + format_param_value(params.real("dt_min")) +
                        ") must not exceed dt_max (" + format_param_value(params.real("dt_max")) + ")");
  if (params.real("expand") * static_cast<double>(context.d_model) < 1.0)
    throw RegistryError("mamba: expand·d_model must be at least 1 (expand = " +
                        format_param_value(params.real("expand")) +
                        ", d_model = " + std::to_string(context.d_model) + ")");
}

}  // namespace

const RegisterMixer<Mamba> kMambaRegistration(
    "mamba",
    "Mamba-1 selective state-space block (in_proj, causal conv, selective scan, gate)",
    {
        ParamSpec::integer("d_state", 16, "SSM state size n per channel", 1, 1024),
        ParamSpec::integer("d_conv", 4, "causal depthwise conv kernel size K", 1, 64),
        ParamSpec::real("expand", 2.0, "inner width E = floor(expand·d_model)", 0.01, 64),
        ParamSpec::integer("dt_rank", 0, "rank R of the Δ projection; 0 = auto ⌈d_model/16⌉", 0, 65536),
        ParamSpec::real("dt_min", 0.001, "smallest initial Δ (log-uniform draw)", 1e-8, 10),
        ParamSpec::real("dt_max", 0.1, "largest initial Δ (log-uniform draw)", 1e-8, 10),
        ParamSpec::real("dt_init_floor", 1e-4, "initial Δ values are clamped at this floor", 1e-12, 10),
    },
    validate_mamba);

}  // namespace mixlab
