// `random_mixing`: RandFormer's frozen random token mixing made causal (arXiv 2210.13452, §3; docs/schemes.md).
//
//   U_{ts} ~ Uniform[0, 1)  drawn once (fixed seed) for an N_max × N_max table
//   R_{ts} = exp(U_{ts}) / Σ_{s' ≤ t} exp(U_{ts'})   for s ≤ t,   0 otherwise
//   y_t    = Σ_{s ≤ t} R_{ts} u_s
//
// The original draws a full T×T matrix (T = tokens of a vision stage) and softmaxes each row; here
// the support is lower-triangular and each row renormalised over its prefix.  R is a buffer, not
// a parameter: it is saved and moved with the module but never trained.  Because U ∈ [0, 1), the
// weights of one row differ by at most a factor e: this is a noisy causal running mean.
// Length-bound: sequences longer than max_len are refused.  FLOPs d·N(N+1) for the kept pairs
// (the forward issues a dense N×N product: 2·N²·d); state: all past inputs, N·d.

#include "core/register_mixer.h"
#include "core/registry.h"

#include <cmath>

namespace mixlab {
namespace {

// splitmix64: a fixed, library-independent stream of uniform draws, so that the frozen matrix is
// the same on every machine and LibTorch version.
double next_uniform(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);  // [0, 1)
}

torch::Tensor causal_random_mixing_matrix(int64_t max_len, uint64_t seed) {
  auto matrix = torch::zeros({max_len, max_len}, torch::kFloat64);
  auto entries = matrix.accessor<double, 2>();
  uint64_t state = seed;
  for (int64_t t = 0; t < max_len; ++t) {
    double total = 0;
    for (int64_t s = 0; s <= t; ++s) total += (entries[t][s] = std::exp(next_uniform(state)));
    for (int64_t s = 0; s <= t; ++s) entries[t][s] /= total;
  }
  return matrix;
}

class RandomMixing : public TokenMixer {
 public:
  RandomMixing(const MixerContext& context, const MixerParams& params)
      : d_model_(context.d_model), max_len_(params.integer("max_len")) {
    mixing_ = register_buffer(
        "mixing", causal_random_mixing_matrix(max_len_, static_cast<uint64_t>(params.integer("seed")))
                      .to(torch::get_default_dtype()));
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    const int64_t n = x.size(1);
    check_length(n);
    return torch::matmul(mixing_.narrow(0, 0, n).narrow(1, 0, n).to(x.dtype()), x);  // [N,N]·[B,N,d]
  }

  Cost cost(const CostShape& shape) const override {
    const double b = shape.batch, n = shape.seq_len;
    Cost cost;
    cost.matmul_flops = 2.0 * b * n * n * d_model_;
    cost.flops = b * d_model_ * n * (n + 1);
    cost.state_bytes = b * n * d_model_ * shape.bytes_per_element;
    return cost;
  }

  bool has_step() const override { return true; }
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override {
    MixerState state;
    state.tensors["inputs"] = torch::zeros({batch, 0, d_model_}, options);  // all past inputs
    return state;
  }
  torch::Tensor step(const torch::Tensor& x_t, MixerState& state) override {
    const int64_t t = state.position;
    check_length(t + 1);
    auto& inputs = state.tensors["inputs"];
    inputs = torch::cat({inputs, x_t.unsqueeze(1)}, 1);                       // [B, t+1, d]
    auto row = mixing_[t].narrow(0, 0, t + 1).to(x_t.dtype());                 // [t+1]
    state.position += 1;
    return torch::matmul(row, inputs);                                        // [B, d]
  }

 private:
  void check_length(int64_t n) const {
    if (n > max_len_)
      throw std::invalid_argument("random_mixing: sequence length " + std::to_string(n) +
                                  " exceeds max_len = " + std::to_string(max_len_) +
                                  " (the frozen matrix is drawn for max_len tokens; raise the parameter)");
  }

  int64_t d_model_, max_len_;
  torch::Tensor mixing_;  // [max_len, max_len], lower-triangular, rows sum to 1
};

}  // namespace

const RegisterMixer<RandomMixing> kRandomMixingRegistration(
    "random_mixing",
    "RandFormer made causal: frozen random row-stochastic lower-triangular mixing",
    {
        ParamSpec::integer("max_len", 2048, "longest sequence; the frozen matrix is max_len × max_len", 1, 32768),
        ParamSpec::integer("seed", 0, "seed of the frozen draw", 0),
    });

}  // namespace mixlab
