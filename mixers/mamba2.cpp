// `mamba2`: the Mamba-2 block with the SSD layer (Dao & Gu, arXiv 2405.21060, §6–7), [B, N, d] -> [B, N, d].
//
//   [z, xBC, dt] = in_proj(u)                        d -> E + (E + 2·G·n) + H, no bias   (E = expand·d)
//   xBC          = SiLU( causal_depthwise_conv_K(xBC) + b_conv )
//   [x, B̃, C̃]    = split(xBC)                        x: [B, N, H, P];  B̃, C̃: [B, N, G, n]
//                                                    (H = E/P heads of size P = headdim)
//   Δ            = softplus(dt + dt_bias)            [B, N, H]   one step size per head
//   A            = −exp(A_log)                       [H]         one scalar per head
//   S_t          = exp(Δ_t A) S_{t−1} + Δ_t x_t ⊗ B̃_t                 per head S_t: [P, n]
//   y_t          = S_t C̃_t + D x_t                                    per head: [P]
//   y            = RMSNorm_group( y ⊙ SiLU(z) ) · w   gate first (norm_before_gate = False),
//                                                    statistics per group of E/G channels, as
//                                                    mamba_ssm (HF transformers' MambaRMSNormGated
//                                                    normalises over all E: differs when G > 1)
//   out          = out_proj(y)                       E -> d, no bias
//
// Heads h = g·(H/G) .. (g+1)·(H/G) − 1 share group g's B̃ and C̃.  Training and prefill use the
// chunked dual form (SSD, chunks of Q tokens, see ssd_chunked below); step() the recurrence.
// Time O(N·E·(n + Q)); inference state per sequence: the SSM state [H, P, n] = E·n elements and
// the last K−1 conv inputs [(E + 2Gn), K−1].
//
// Option hidden_mixer = hsm (EfficientViM's hidden-state mixer, Lee, Choi & Kim, CVPR 2025,
// arXiv 2411.15241, §3.2 "HSM-SSD"): the paper mixes and gates the channels of the one global
// hidden state instead of every token.  A global state reads the future, so the causal 1D form
// applies the mixer, per state index, to the state H_{c−1} that enters each chunk and lets the
// inter-chunk readout use the mixed state (the recurrence itself carries the unmixed one):
//   M(H) = W_hsm_out( (W_hsm_in H) ⊙ SiLU(W_hsm_gate H) )     over the E = H·P channels, per state index
//   Y_off,t = exp(Σ_{start(c)≤τ≤t} ā_τ) C̃_tᵀ M(H_{c−1})       (step 4 below; steps 1-3 unchanged)
// Chunks then sit at fixed multiples of chunk_size for every N (so that step() agrees), and the
// mixer costs 6·E²·n FLOPs per chunk boundary (3E² parameters); the paper's saving (dropping the
// per-token projections) is not taken: out_proj stays, the option adds the state mixer.
//
// Weight names as state-spaces/mamba's Mamba2: in_proj.weight [2E + 2Gn + H, d],
// conv1d.weight [E + 2Gn, 1, K], conv1d.bias, dt_bias [H], A_log [H], D [H], norm.weight [E],
// out_proj.weight [d, E].  Parameters: d(2E + 2Gn + H) + (E + 2Gn)(K + 1) + 3H + E + Ed.
// Initialisation: A = U(A_init_min, A_init_max) per head, A_log = log A; dt_bias = softplus⁻¹(dt)
// with dt log-uniform in [dt_min, dt_max] clamped at dt_init_floor; D = 1; norm.weight = 1;
// in_proj, out_proj ~ N(0, init_std); conv1d keeps LibTorch's default.

#include "core/init.h"
#include "core/register_mixer.h"
#include "core/registry.h"
#include "mixers/selective_scan.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

namespace mixlab {
namespace {

// segsum(a)[..., t, s] = Σ_{s<τ≤t} a_τ for s ≤ t, −∞ above the diagonal.  a: [..., Q] -> [..., Q, Q].
// Summed from masked copies rather than as a difference of cumulative sums, which would cancel.
torch::Tensor segment_sums(const torch::Tensor& a) {
  const int64_t Q = a.size(-1);
  auto options = a.options().dtype(torch::kBool);
  auto strictly_lower = torch::ones({Q, Q}, options).tril(-1);   // τ > s
  auto lower = torch::ones({Q, Q}, options).tril(0);             // t ≥ s
  std::vector<int64_t> expanded(a.sizes().begin(), a.sizes().end());
  expanded.push_back(Q);
  auto terms = a.unsqueeze(-1).expand(expanded).masked_fill(strictly_lower.logical_not(), 0.0);  // [.., τ, s]
  return terms.cumsum(-2).masked_fill(lower.logical_not(), -std::numeric_limits<double>::infinity());
}

// The SSD layer in chunked (dual) form, per head with ā_t = Δ_t A and x̄_t = Δ_t x_t, chunks of Q:
//   1. intra-chunk:  Y_diag = (L ∘ C̃ B̃ᵀ) X̄,   L_ts = exp(Σ_{s<τ≤t} ā_τ) for s ≤ t
//   2. chunk states: S_c = Σ_{s∈c} exp(Σ_{s<τ≤end(c)} ā_τ) x̄_s B̃_sᵀ            [P, n]
//   3. inter-chunk:  H_c = exp(Σ_{τ∈c} ā_τ) H_{c−1} + S_c                        (loop over N/Q chunks)
//   4. readout:      Y_off,t = exp(Σ_{start(c)≤τ≤t} ā_τ) H_{c−1} C̃_t
//   Y = Y_diag + Y_off  (the D skip is added by the caller).
// x: [B, N, H, P], dt (= Δ, after softplus): [B, N, H], A: [H], B, C: [B, N, G, n] -> y: [B, N, H, P].
// N need not be a multiple of Q: the tail is padded with Δ = 0 (no decay, no input) and cropped.
// Matrix products issued (Np = N rounded up to Q): 2·B·Np·Q·(G·n + E) for step 1 (whole Q×Q
// tiles) and 2·B·Np·E·n each for steps 2 and 4.
// `mix_entering` (optional): maps the entering states [B, chunks, H, P, n] before step 4.
torch::Tensor ssd_chunked(const torch::Tensor& x, const torch::Tensor& dt, const torch::Tensor& A,
                          const torch::Tensor& B, const torch::Tensor& C, int64_t chunk,
                          const std::function<torch::Tensor(const torch::Tensor&)>& mix_entering = {}) {
  const int64_t batch = x.size(0), N = x.size(1), H = x.size(2), P = x.size(3), G = B.size(2),
                n = B.size(3), per_group = H / G, Q = chunk;
  const int64_t pad = (Q - N % Q) % Q, Np = N + pad, chunks = Np / Q;
  auto x_bar = x * dt.unsqueeze(-1);   // x̄ = Δ x: [B, N, H, P]
  auto a_bar = dt * A;                 // ā = Δ A: [B, N, H]
  auto B_pad = B, C_pad = C;
  if (pad > 0) {
    x_bar = torch::constant_pad_nd(x_bar, {0, 0, 0, 0, 0, pad});
    a_bar = torch::constant_pad_nd(a_bar, {0, 0, 0, pad});
    B_pad = torch::constant_pad_nd(B, {0, 0, 0, 0, 0, pad});
    C_pad = torch::constant_pad_nd(C, {0, 0, 0, 0, 0, pad});
  }
  // Chunked views, heads split into (group, head within group).
  auto X = x_bar.reshape({batch, chunks, Q, G, per_group, P}).permute({0, 1, 3, 4, 2, 5});  // [B,c,G,h,Q,P]
  auto a = a_bar.reshape({batch, chunks, Q, H}).permute({0, 1, 3, 2});                      // [B,c,H,Q]
  auto Bc = B_pad.reshape({batch, chunks, Q, G, n}).permute({0, 1, 3, 2, 4});               // [B,c,G,Q,n]
  auto Cc = C_pad.reshape({batch, chunks, Q, G, n}).permute({0, 1, 3, 2, 4});               // [B,c,G,Q,n]
  auto cumulative = a.cumsum(-1);                                                             // [B,c,H,Q]
  auto as_heads = [&](const torch::Tensor& t) {  // [B,c,H,...] -> [B,c,G,h,...]
    std::vector<int64_t> shape{batch, chunks, G, per_group};
    shape.insert(shape.end(), t.sizes().begin() + 3, t.sizes().end());
    return t.reshape(shape);
  };

  // 1. Intra-chunk: a causal "attention" with decay inside each chunk.
  auto decay_within = as_heads(torch::exp(segment_sums(a)));                   // [B,c,G,h,Q,Q]
  auto scores = torch::matmul(Cc, Bc.transpose(-1, -2));                       // C̃ B̃ᵀ: [B,c,G,Q,Q]
  auto Y_diag = torch::matmul(decay_within * scores.unsqueeze(3), X);          // [B,c,G,h,Q,P]

  // 2. The state each chunk leaves behind, from its own inputs only.
  auto decay_to_end = as_heads(torch::exp(cumulative.narrow(-1, Q - 1, 1) - cumulative));  // [B,c,G,h,Q]
  auto weighted = (X * decay_to_end.unsqueeze(-1)).transpose(-1, -2)         // [B,c,G,h,P,Q]
                      .reshape({batch, chunks, G, per_group * P, Q});
  auto chunk_states = torch::matmul(weighted, Bc).reshape({batch, chunks, H, P, n});

  // 3. Carry the state across chunks: H_c = exp(Σ_c ā) H_{c−1} + S_c.
  auto chunk_decay = torch::exp(cumulative.select(-1, Q - 1));                 // [B,c,H]
  std::vector<torch::Tensor> entering;                                         // H_{c−1} per chunk
  entering.reserve(chunks);
  auto state = torch::zeros({batch, H, P, n}, x.options());
  for (int64_t c = 0; c < chunks; ++c) {
    entering.push_back(state);
    state = torch::addcmul(chunk_states.select(1, c), chunk_decay.select(1, c).unsqueeze(-1).unsqueeze(-1), state);
  }
  auto entering_states = torch::stack(entering, 1);                            // [B,c,H,P,n]
  if (mix_entering) entering_states = mix_entering(entering_states);
  auto entry = entering_states.reshape({batch, chunks, G, per_group * P, n});

  // 4. What the entering state contributes to each position, decayed to it.
  auto Y_off = torch::matmul(Cc, entry.transpose(-1, -2))                      // [B,c,G,Q,h·P]
                   .reshape({batch, chunks, G, Q, per_group, P})
                   .permute({0, 1, 2, 4, 3, 5});                               // [B,c,G,h,Q,P]
  Y_off = Y_off * as_heads(torch::exp(cumulative)).unsqueeze(-1);

  auto Y = (Y_diag + Y_off).permute({0, 1, 4, 2, 3, 5}).reshape({batch, Np, H, P});
  return Y.narrow(1, 0, N);
}

struct Mamba2Shape {
  int64_t d_model, inner, heads, head_dim, groups, d_state, d_conv, chunk;
  int64_t conv_channels() const { return inner + 2 * groups * d_state; }
  int64_t projection_width() const { return inner + conv_channels() + heads; }
};

// headdim 0 = auto: the largest divisor of E not above 64 (64 whenever 64 divides E, as the
// paper's configurations; tiny test models get E itself).
int64_t head_dim_of(int64_t inner, const MixerParams& params) {
  const int64_t given = params.integer("headdim");
  if (given > 0) return given;
  for (int64_t p = std::min<int64_t>(64, inner); p > 1; --p)
    if (inner % p == 0) return p;
  return 1;
}

Mamba2Shape mamba2_shape(const MixerContext& context, const MixerParams& params) {
  Mamba2Shape shape;
  shape.d_model = context.d_model;
  shape.inner = static_cast<int64_t>(params.real("expand") * static_cast<double>(context.d_model));
  shape.head_dim = head_dim_of(shape.inner, params);
  shape.heads = shape.inner / shape.head_dim;
  shape.groups = params.integer("ngroups");
  shape.d_state = params.integer("d_state");
  shape.d_conv = params.integer("d_conv");
  shape.chunk = params.integer("chunk_size");
  return shape;
}

// RMSNormGated with norm_before_gate = False: g = y ⊙ SiLU(z), then per group of `group_size`
// channels g · rsqrt(mean(g²) + eps) · weight.  Statistics in float32 (float64 for float64 input).
class GatedRMSNormImpl : public torch::nn::Module {
 public:
  GatedRMSNormImpl(int64_t dim, int64_t group_size, double eps) : group_size(group_size), eps(eps) {
    weight = register_parameter("weight", torch::ones({dim}));
  }
  // y, z: [..., E] -> [..., E]
  torch::Tensor forward(const torch::Tensor& y, const torch::Tensor& z) {
    const auto type = recurrence_type(y);
    auto gated = y.to(type) * torch::silu(z.to(type));
    std::vector<int64_t> grouped(gated.sizes().begin(), gated.sizes().end() - 1);
    grouped.push_back(gated.size(-1) / group_size);
    grouped.push_back(group_size);
    auto g = gated.reshape(grouped);
    auto normed = (g * torch::rsqrt(g.square().mean(-1, true) + eps)).reshape(gated.sizes());
    return (normed * weight.to(type)).to(y.scalar_type());
  }
  torch::Tensor weight;
  int64_t group_size;
  double eps;
};
TORCH_MODULE(GatedRMSNorm);

class Mamba2 : public TokenMixer {
 public:
  Mamba2(const MixerContext& context, const MixerParams& params)
      : s_(mamba2_shape(context, params)), hsm_(params.text("hidden_mixer") == "hsm") {
    in_proj_ = register_module(
        "in_proj", torch::nn::Linear(torch::nn::LinearOptions(s_.d_model, s_.projection_width()).bias(false)));
    conv1d_ = register_module("conv1d", torch::nn::Conv1d(torch::nn::Conv1dOptions(
                                            s_.conv_channels(), s_.conv_channels(), s_.d_conv)
                                                              .groups(s_.conv_channels())
                                                              .bias(true)));
    dt_bias_ = register_parameter("dt_bias", sample_dt_bias(s_.heads, params.real("dt_min"), params.real("dt_max"),
                                                            params.real("dt_init_floor")));
    const double A_min = params.real("A_init_min"), A_max = params.real("A_init_max");
    A_log_ = register_parameter("A_log", torch::log(torch::rand({s_.heads}) * (A_max - A_min) + A_min));
    D_ = register_parameter("D", torch::ones({s_.heads}));
    norm_ = register_module("norm", GatedRMSNorm(s_.inner, s_.inner / s_.groups, params.real("norm_eps")));
    out_proj_ = register_module(
        "out_proj", torch::nn::Linear(torch::nn::LinearOptions(s_.inner, s_.d_model).bias(false)));
    normal_init(in_proj_, context.init_std);
    normal_init(out_proj_, context.init_std);
    if (hsm_)
      for (auto* linear : {&hsm_in_, &hsm_gate_, &hsm_out_}) {
        const char* name = linear == &hsm_in_ ? "hsm_in" : linear == &hsm_gate_ ? "hsm_gate" : "hsm_out";
        *linear = register_module(name, torch::nn::Linear(torch::nn::LinearOptions(s_.inner, s_.inner).bias(false)));
        normal_init(*linear, context.init_std);
      }
  }

  // EfficientViM's hidden-state mixer over the E = H·P channels of states [..., H, P, n], per state index:
  //   M(S) = W_out( (W_in S) ⊙ SiLU(W_gate S) )
  torch::Tensor mix_hidden_state(const torch::Tensor& states) const {
    const int64_t dims = states.dim();
    auto channels_last = states.movedim(dims - 1, dims - 3).flatten(dims - 2);       // [..., n, E]
    const auto type = states.scalar_type();
    auto in = torch::linear(channels_last, hsm_in_->weight.to(type));
    auto gate = torch::silu(torch::linear(channels_last, hsm_gate_->weight.to(type)));
    auto mixed = torch::linear(in * gate, hsm_out_->weight.to(type));                 // [..., n, E]
    return mixed.unflatten(dims - 2, {s_.heads, s_.head_dim}).movedim(dims - 3, dims - 1);  // [..., H, P, n]
  }

  // x: [B, N, d] -> [B, N, d]
  torch::Tensor forward(const torch::Tensor& x) override {
    const int64_t batch = x.size(0), N = x.size(1), E = s_.inner, Gn = s_.groups * s_.d_state;
    auto projected = in_proj_(x);                                                    // [B, N, 2E + 2Gn + H]
    auto z = projected.narrow(-1, 0, E);
    auto xBC = projected.narrow(-1, E, s_.conv_channels()).transpose(1, 2);        // [B, E + 2Gn, N]
    auto dt = projected.narrow(-1, E + s_.conv_channels(), s_.heads);              // [B, N, H]
    xBC = torch::silu(conv1d_(torch::constant_pad_nd(xBC, {s_.d_conv - 1, 0}))).transpose(1, 2);
    const auto type = recurrence_type(x);
    auto xs = xBC.narrow(-1, 0, E).reshape({batch, N, s_.heads, s_.head_dim}).to(type);
    auto B = xBC.narrow(-1, E, Gn).reshape({batch, N, s_.groups, s_.d_state}).to(type);
    auto C = xBC.narrow(-1, E + Gn, Gn).reshape({batch, N, s_.groups, s_.d_state}).to(type);
    auto delta = torch::softplus(dt.to(type) + dt_bias_.to(type));                 // Δ: [B, N, H]
    auto A = -torch::exp(A_log_.to(type));
    std::function<torch::Tensor(const torch::Tensor&)> mixer;
    if (hsm_) mixer = [this](const torch::Tensor& states) { return mix_hidden_state(states); };
    auto y = ssd_chunked(xs, delta, A, B, C, chunk_length(N), mixer) + D_.to(type).unsqueeze(-1) * xs;  // [B, N, H, P]
    return out_proj_(norm_(y.reshape({batch, N, E}).to(x.scalar_type()), z));
  }

  // The chunk length used for N tokens: chunk_size, or N itself when shorter (one exact chunk,
  // no padding).  With the hidden-state mixer chunk boundaries are part of the rule: always chunk_size.
  int64_t chunk_length(int64_t seq_len) const {
    return hsm_ ? s_.chunk : std::max<int64_t>(1, std::min(s_.chunk, seq_len));
  }

  // flops (what the equations need): projections 2·N·d·(2E + 2Gn + H) + 2·N·E·d; conv
  // 2·N·(E + 2Gn)·K; intra-chunk the causal pairs inside each chunk (Q(Q+1)/2 per full chunk) at
  // 2·(G·n + E) each; chunk states and state readout 4·N·E·n; inter-chunk recurrence 2·(N/Q)·E·n;
  // 9·N·E for Δx, the D skip, the SiLU gate and the RMS norm.
  // matmul_flops (what the forward issues): the projections, and the SSD products on the padded
  // length Np with whole Q×Q tiles (Q = chunk_length(N)): 2·Np·Q·(G·n + E) + 4·Np·E·n.  The
  // conv is a grouped convolution, not a matrix product.
  // state_bytes: step()'s K−1 conv inputs in the model dtype and the SSM state in float32
  // (float64 for float64 models).
  Cost cost(const CostShape& shape) const override {
    const double b = shape.batch, N = shape.seq_len, d = s_.d_model, E = s_.inner, n = s_.d_state, Gn = static_cast<double>(s_.groups) * s_.d_state, K = s_.d_conv,
                 Q = chunk_length(shape.seq_len);
    const int64_t full_chunks = shape.seq_len / static_cast<int64_t>(Q), tail = shape.seq_len % static_cast<int64_t>(Q);
    const double Np = static_cast<double>(full_chunks + (tail > 0 ? 1 : 0)) * Q;
    const double pairs = full_chunks * Q * (Q + 1) / 2 + tail * (tail + 1) / 2.0;
    const double projections = 2.0 * b * N * d * static_cast<double>(s_.projection_width()) + 2.0 * b * N * E * d;
    Cost cost;
    cost.matmul_flops = projections + 2.0 * b * Np * Q * (Gn + E) + 4.0 * b * Np * E * n;
    cost.flops = projections + 2.0 * b * N * (E + 2 * Gn) * K + 2.0 * b * pairs * (Gn + E) +
                 4.0 * b * N * E * n + 2.0 * b * std::ceil(N / Q) * E * n + 9.0 * b * N * E;
    const double ssm_bytes = std::max<int64_t>(shape.bytes_per_element, 4);
    cost.state_bytes = b * ((E + 2 * Gn) * (K - 1) * shape.bytes_per_element + E * n * ssm_bytes);
    if (hsm_) {  // the mixer at each of the Np/Q chunk entries; step() keeps M(H) − H and the decay since the entry
      cost.flops += 6.0 * b * (Np / Q) * n * E * E;
      cost.matmul_flops += 6.0 * b * (Np / Q) * n * E * E;
      cost.state_bytes += b * (E * n + s_.heads) * ssm_bytes;
    }
    return cost;
  }

  bool has_step() const override { return true; }
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override {
    const auto ssm_type = options.dtype() == torch::kDouble ? torch::kDouble : torch::kFloat;
    MixerState state;
    state.tensors["conv_state"] = torch::zeros({batch, s_.conv_channels(), s_.d_conv - 1}, options);
    state.tensors["ssm_state"] =
        torch::zeros({batch, s_.heads, s_.head_dim, s_.d_state}, options.dtype(ssm_type));
    if (hsm_) {
      state.tensors["entry_correction"] = torch::zeros({batch, s_.heads, s_.head_dim, s_.d_state}, options.dtype(ssm_type));
      state.tensors["decay_since_entry"] = torch::ones({batch, s_.heads}, options.dtype(ssm_type));
    }
    return state;
  }

  // The recurrent form, one token: x_t: [B, d] -> [B, d].
  torch::Tensor step(const torch::Tensor& x_t, MixerState& state) override {
    const int64_t batch = x_t.size(0), E = s_.inner, Gn = s_.groups * s_.d_state,
                  per_group = s_.heads / s_.groups;
    auto& conv_state = state.tensors.at("conv_state");  // [B, E + 2Gn, K−1]
    auto& ssm = state.tensors.at("ssm_state");          // [B, H, P, n]
    const auto type = ssm.scalar_type();
    auto projected = in_proj_(x_t);
    auto z = projected.narrow(-1, 0, E);
    auto window = torch::cat({conv_state, projected.narrow(-1, E, s_.conv_channels()).unsqueeze(-1)}, -1);
    conv_state = window.narrow(-1, 1, s_.d_conv - 1).contiguous();
    auto xBC = torch::silu((window * conv1d_->weight.squeeze(1)).sum(-1) + conv1d_->bias);  // [B, E + 2Gn]
    auto xs = xBC.narrow(-1, 0, E).reshape({batch, s_.heads, s_.head_dim}).to(type);        // [B, H, P]
    auto per_head = [&](int64_t offset) {  // [B, G·n] -> [B, H, n], head h reads group h / (H/G)
      return xBC.narrow(-1, offset, Gn).reshape({batch, s_.groups, 1, s_.d_state})
          .expand({batch, s_.groups, per_group, s_.d_state}).reshape({batch, s_.heads, s_.d_state}).to(type);
    };
    auto B = per_head(E), C = per_head(E + Gn);
    auto delta = torch::softplus(projected.narrow(-1, E + s_.conv_channels(), s_.heads).to(type) +
                                 dt_bias_.to(type));                                        // [B, H]
    auto decay = torch::exp(delta * -torch::exp(A_log_.to(type)));                          // [B, H]
    // S_t = exp(Δ A) S_{t−1} + (Δ x_t) ⊗ B̃_t
    // Hidden-state mixer: at a chunk entry keep M(H_{c−1}) − H_{c−1}; the readout adds it, decayed.
    if (hsm_ && state.position % s_.chunk == 0) {
      state.tensors.at("entry_correction") = mix_hidden_state(ssm) - ssm;
      state.tensors.at("decay_since_entry").fill_(1.0);
    }
    ssm = torch::addcmul((delta.unsqueeze(-1) * xs).unsqueeze(-1) * B.unsqueeze(2),
                         decay.unsqueeze(-1).unsqueeze(-1), ssm);
    auto read_state = ssm;
    if (hsm_) {
      auto& since = state.tensors.at("decay_since_entry");
      since = since * decay;
      read_state = ssm + since.unsqueeze(-1).unsqueeze(-1) * state.tensors.at("entry_correction");
    }
    auto y = torch::matmul(read_state, C.unsqueeze(-1)).squeeze(-1) + D_.to(type).unsqueeze(-1) * xs;  // [B, H, P]
    state.position += 1;
    return out_proj_(norm_(y.reshape({batch, E}).to(x_t.scalar_type()), z));
  }

 private:
  Mamba2Shape s_;
  torch::nn::Linear in_proj_{nullptr}, out_proj_{nullptr};
  torch::nn::Conv1d conv1d_{nullptr};
  GatedRMSNorm norm_{nullptr};
  torch::Tensor dt_bias_, A_log_, D_;
  bool hsm_ = false;
  torch::nn::Linear hsm_in_{nullptr}, hsm_gate_{nullptr}, hsm_out_{nullptr};
};

void validate_mamba2(const MixerContext& context, const MixerParams& params) {
  auto fail = [](const std::string& message) { throw RegistryError("mamba2: " + message); };
  const double expand = params.real("expand");
  const int64_t inner = static_cast<int64_t>(expand * static_cast<double>(context.d_model));
  if (inner < 1)
    fail("expand·d_model must be at least 1 (expand = " + format_param_value(expand) + ", d_model = " +
         std::to_string(context.d_model) + ")");
  const int64_t head_dim = head_dim_of(inner, params), groups = params.integer("ngroups");
  if (inner % head_dim != 0)
    fail("headdim (" + std::to_string(head_dim) + ") must divide the inner width E = floor(expand·d_model) = " +
         std::to_string(inner) + " (expand = " + format_param_value(expand) + ", d_model = " +
         std::to_string(context.d_model) + "); set headdim to a divisor of " + std::to_string(inner));
  const int64_t heads = inner / head_dim;
  if (heads % groups != 0)
    fail("ngroups (" + std::to_string(groups) + ") must divide the number of heads E/headdim = " +
         std::to_string(heads));
  if (params.real("dt_min") > params.real("dt_max"))
    fail("dt_min (" + format_param_value(params.real("dt_min")) + ") must not exceed dt_max (" +
         format_param_value(params.real("dt_max")) + ")");
  if (params.real("A_init_min") > params.real("A_init_max"))
    fail("A_init_min (" + format_param_value(params.real("A_init_min")) + ") must not exceed A_init_max (" +
         format_param_value(params.real("A_init_max")) + ")");
}

}  // namespace

const RegisterMixer<Mamba2> kMamba2Registration(
    "mamba2",
    "Mamba-2 block: SSD layer (scalar decay per head), chunked dual form, gated RMSNorm",
    {
        ParamSpec::integer("d_state", 128, "SSM state size n per head", 1, 1024),
        ParamSpec::integer("d_conv", 4, "causal depthwise conv kernel size K (over x, B, C)", 1, 64),
        ParamSpec::real("expand", 2.0, "inner width E = floor(expand·d_model)", 0.01, 64),
        ParamSpec::integer("headdim", 0, "head size P; must divide E (heads H = E/P); 0 = auto, the largest divisor of E up to 64", 0, 65536),
        ParamSpec::integer("ngroups", 1, "groups G of heads sharing B and C; must divide H", 1, 65536),
        ParamSpec::integer("chunk_size", 256, "SSD chunk length Q for training / prefill", 1, 65536),
        ParamSpec::real("A_init_min", 1.0, "A = −U(A_init_min, A_init_max) per head at init", 1e-6, 1e6),
        ParamSpec::real("A_init_max", 16.0, "see A_init_min", 1e-6, 1e6),
        ParamSpec::real("dt_min", 0.001, "smallest initial Δ (log-uniform draw)", 1e-8, 10),
        ParamSpec::real("dt_max", 0.1, "largest initial Δ (log-uniform draw)", 1e-8, 10),
        ParamSpec::real("dt_init_floor", 1e-4, "initial Δ values are clamped at this floor", 1e-12, 10),
        ParamSpec::real("norm_eps", 1e-5, "epsilon of the gated RMSNorm", 0, 1),
        ParamSpec::text("hidden_mixer", "none",
                        "hsm: EfficientViM's hidden-state mixer on the state entering each chunk (+3E² params, 6E²n FLOPs per chunk)",
                        {"none", "hsm"}),
    },
    validate_mamba2);

}  // namespace mixlab
