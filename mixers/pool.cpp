// `pool`: PoolFormer's pooling mixer made causal (arXiv 2111.11418, §3; docs/schemes.md).
//
//   y_t = (1/m_t) Σ_{s=t-k+1}^{t} u_s − u_t,     m_t = min(k, t+1)
//
// The original averages a centred 3×3 window (count_include_pad=False) and subtracts the input
// because the block adds it back; here the window is the last k tokens and the count excludes the
// missing positions before the start.  k = N gives the causal running mean.
// Params 0.  Short windows (k ≤ 16) add k shifted copies: N·d·(k+1) FLOPs; longer windows take
// the difference of a float64 running sum: ~4·N·d FLOPs.  State: the last k−1 inputs.

#include "core/register_mixer.h"
#include "core/registry.h"

namespace mixlab {
namespace {

class CausalPool : public TokenMixer {
 public:
  CausalPool(const MixerContext& context, const MixerParams& params)
      : d_model_(context.d_model), window_(params.integer("pool_size")) {}

  torch::Tensor forward(const torch::Tensor& x) override {
    const int64_t n = x.size(1);
    auto counts = torch::arange(1, n + 1, x.options()).clamp_max(static_cast<double>(window_));
    if (window_ > kDirectWindow) {
      // Σ_{s=t-k+1}^{t} u_s = P_{t+1} − P_{max(0, t+1-k)},  P_j = Σ_{s<j} u_s  (float64 against cancellation)
      auto wide = x.to(torch::kFloat64);
      auto prefix = torch::constant_pad_nd(wide.cumsum(1), {0, 0, 1, 0});  // [B, N+1, d]
      auto ends = torch::arange(1, n + 1, torch::TensorOptions().dtype(torch::kLong).device(x.device()));
      auto starts = (ends - window_).clamp_min(0);
      auto sum = prefix.index_select(1, ends) - prefix.index_select(1, starts);
      return sum.to(x.scalar_type()) / counts.view({1, n, 1}) - x;
    }
    // Sum of the k shifted copies u_{t-i}, i = 0..k-1 (zeros before the start).
    auto padded = torch::constant_pad_nd(x, {0, 0, std::min(window_, n) - 1, 0});  // [B, N+k'-1, d]
    auto sum = torch::zeros_like(x);
    for (int64_t i = 0; i < std::min(window_, n); ++i) sum = sum + padded.narrow(1, i, n);
    return sum / counts.view({1, n, 1}) - x;
  }

  Cost cost(const CostShape& shape) const override {
    const double tokens = static_cast<double>(shape.batch) * shape.seq_len;
    const double kept = std::min<int64_t>(window_ - 1, shape.seq_len);
    Cost cost;
    cost.flops = tokens * d_model_ * (window_ > kDirectWindow ? 4.0 : window_ + 1.0);
    cost.state_bytes = static_cast<double>(shape.batch) * kept * d_model_ * shape.bytes_per_element;
    return cost;
  }

  bool has_step() const override { return true; }
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override {
    MixerState state;
    state.tensors["history"] = torch::zeros({batch, 0, d_model_}, options);  // ≤ k−1 past inputs
    return state;
  }
  torch::Tensor step(const torch::Tensor& x_t, MixerState& state) override {
    auto& history = state.tensors["history"];
    auto window = torch::cat({history, x_t.unsqueeze(1)}, 1);  // [B, m_t, d]
    auto y = window.mean(1) - x_t;
    history = window.narrow(1, window.size(1) - std::min(window.size(1), window_ - 1),
                            std::min(window.size(1), window_ - 1));
    state.position += 1;
    return y;
  }


 private:
  static constexpr int64_t kDirectWindow = 16;
  int64_t d_model_, window_;
};

}  // namespace

const RegisterMixer<CausalPool> kCausalPoolRegistration(
    "pool",
    "PoolFormer made causal: mean of the last k tokens minus the token",
    {ParamSpec::integer("pool_size", 3, "window k (PoolFormer uses 3; k ≥ N = running mean)",
                                       1, 1 << 20)});

}  // namespace mixlab
