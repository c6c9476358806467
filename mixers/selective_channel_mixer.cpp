// `selective_channel_mixer`: MambaMixer's selective channel mixer (Behrouz, Santacatterina & Zabih
// 2024, arXiv 2403.19888, §3.2 "Selective Channel Mixing"), u: [B, N, d] -> [B, N, d].
//
// MambaMixer scans the channel axis with a bidirectional selective SSM (S6).  In vision and time
// series a channel's "token" is its whole feature map / series, which in a causal LM would read the
// future.  The causal 1D form scans within each token: its d channels, cut into G = d/m groups of
// m channels, are a length-G sequence of m-dimensional items, scanned in both directions (the
// scan never leaves position t, so the layer is causal and keeps no decode state):
//   X_t        = reshape(u_t, [G, m]);   [x, z] = in_proj(X_t)           m -> 2E (E = expand·m), no bias
//   x          = SiLU(x)                                                 [G, E]
//   for dir ∈ {→, ←} (separate x_proj, dt_proj, A_log, D; the ← scan runs over the reversed groups):
//     [δ, B̃, C̃] = x_proj_dir(x)                                          E -> R + 2n
//     Δ_g        = softplus(W_dt δ_g + b_dt)                             [E]
//     h_g        = exp(Δ_g A) ⊙ h_{g−1} + Δ_g x_g B̃_g,  y_g = <h_g, C̃_g> + D x_g      (S6, Mamba-1)
//   y          = (y_→ + y_←) ⊙ SiLU(z);   out_t = reshape(out_proj(y), [d])   E -> m, no bias
// Parameters shared across groups.  Time O(N·d·E·n/m) per layer; no inference state.

#include "core/init.h"
#include "core/register_mixer.h"
#include "core/registry.h"
#include "mixers/selective_scan.h"

#include <cmath>

namespace mixlab {
namespace {

struct ChannelScanShape {
  int64_t d_model, group, groups, inner, d_state, dt_rank;
};

ChannelScanShape channel_scan_shape(const MixerContext& context, const MixerParams& params) {
  ChannelScanShape s;
  s.d_model = context.d_model;
  s.group = params.integer("group_size");
  s.groups = context.d_model / s.group;
  s.inner = static_cast<int64_t>(params.real("expand") * static_cast<double>(s.group));
  s.d_state = params.integer("d_state");
  s.dt_rank = params.integer("dt_rank") > 0 ? params.integer("dt_rank") : (s.group + 15) / 16;
  return s;
}

class SelectiveChannelMixer : public TokenMixer {
 public:
  SelectiveChannelMixer(const MixerContext& context, const MixerParams& params) : s_(channel_scan_shape(context, params)) {
    const int64_t m = s_.group, E = s_.inner, n = s_.d_state, R = s_.dt_rank;
    auto linear = [&](const std::string& name, int64_t in, int64_t out, bool bias) {
      auto l = register_module(name, torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias)));
      normal_init(l, context.init_std);
      return l;
    };
    in_proj_ = linear("in_proj", m, 2 * E, false);
    out_proj_ = linear("out_proj", E, m, false);
    for (int dir = 0; dir < 2; ++dir) {
      const std::string suffix = dir == 0 ? "_fwd" : "_bwd";
      Direction& scan = directions_[dir];
      scan.x_proj = linear("x_proj" + suffix, E, R + 2 * n, false);
      scan.dt_proj = linear("dt_proj" + suffix, R, E, true);
      scan.A_log = register_parameter("A_log" + suffix, torch::log(torch::arange(1, n + 1, torch::kFloat)).repeat({E, 1}));
      scan.D = register_parameter("D" + suffix, torch::ones({E}));
      torch::NoGradGuard no_grad;
      scan.dt_proj->bias.copy_(sample_dt_bias(E, 0.001, 0.1, 1e-4));
    }
  }

  torch::Tensor forward(const torch::Tensor& u) override {
    const int64_t tokens = u.size(0) * u.size(1), E = s_.inner;
    auto xz = in_proj_(u.reshape({tokens, s_.groups, s_.group}));            // [T, G, 2E]
    auto x = torch::silu(xz.narrow(-1, 0, E)), z = xz.narrow(-1, E, E);       // [T, G, E]
    auto y = scan(directions_[0], x, z) + scan(directions_[1], x.flip(1), z.flip(1)).flip(1);  // [T, G, E]
    return out_proj_(y).reshape(u.sizes());
  }

  // matmul_flops = flops' products, per token: in_proj 4·G·m·E, out_proj 2·G·E·m, and per direction
  // x_proj 2·G·E·(R + 2n), W_dt 2·G·R·E, the readout 2·G·E·n.  flops adds per direction the scan's
  // 7·G·E·n elementwise work and 6·G·E for softplus, D skip and gate, plus 2·G·E for SiLU(x) and the sum.
  Cost cost(const CostShape& shape) const override {
    const double T = static_cast<double>(shape.batch) * shape.seq_len, G = s_.groups, m = s_.group, E = s_.inner,
                 n = s_.d_state, R = s_.dt_rank;
    Cost cost;
    cost.matmul_flops = T * G * (4 * m * E + 2 * E * m + 2 * (2 * E * (R + 2 * n) + 2 * R * E + 2 * E * n));
    cost.flops = cost.matmul_flops + T * G * (2 * (7 * E * n + 6 * E) + 2 * E);
    return cost;
  }

  bool has_step() const override { return true; }
  MixerState initial_state(int64_t, const torch::TensorOptions&) const override { return {}; }
  torch::Tensor step(const torch::Tensor& x_t, MixerState& state) override {
    state.position += 1;
    return forward(x_t.unsqueeze(1)).squeeze(1);
  }

 private:
  struct Direction {
    torch::nn::Linear x_proj{nullptr}, dt_proj{nullptr};
    torch::Tensor A_log, D;
  };

  // One S6 scan over the group axis.  x, z: [T, G, E] -> y ⊙ SiLU(z): [T, G, E]
  torch::Tensor scan(Direction& dir, const torch::Tensor& x, const torch::Tensor& z) {
    const int64_t n = s_.d_state, R = s_.dt_rank;
    auto projected = dir.x_proj(x);                                                        // [T, G, R + 2n]
    auto delta = torch::matmul(projected.narrow(-1, 0, R), dir.dt_proj->weight.t());        // [T, G, E]
    auto y = selective_scan(x.transpose(1, 2), delta.transpose(1, 2), -torch::exp(dir.A_log),
                            projected.narrow(-1, R, n).transpose(1, 2), projected.narrow(-1, R + n, n).transpose(1, 2),
                            dir.D, z.transpose(1, 2), dir.dt_proj->bias);                  // [T, E, G]
    return y.transpose(1, 2);
  }

  ChannelScanShape s_;
  torch::nn::Linear in_proj_{nullptr}, out_proj_{nullptr};
  Direction directions_[2];
};

}  // namespace

const RegisterMixer<SelectiveChannelMixer> kSelectiveChannelMixerRegistration(
    "selective_channel_mixer",
    "MambaMixer's selective channel mixer: a bidirectional S6 scan over each token's channel groups",
    {
        ParamSpec::integer("group_size", 8, "m: channels per item of the channel sequence; must divide d_model", 1, 65536),
        ParamSpec::real("expand", 2.0, "inner width E = floor(expand·m)", 0.01, 64),
        ParamSpec::integer("d_state", 8, "SSM state size n", 1, 1024),
        ParamSpec::integer("dt_rank", 0, "rank R of the Δ projection; 0 = auto ⌈m/16⌉", 0, 65536),
    },
    [](const MixerContext& context, const MixerParams& params) {
      const int64_t m = params.integer("group_size");
      if (context.d_model % m != 0)
        throw RegistryError("selective_channel_mixer: group_size (" + std::to_string(m) + ") must divide d_model (" +
                            std::to_string(context.d_model) + ")");
      if (static_cast<int64_t>(params.real("expand") * static_cast<double>(m)) < 1)
        throw RegistryError("selective_channel_mixer: expand·group_size must be at least 1");
    },
    MixerKind::Channel);

}  // namespace mixlab
