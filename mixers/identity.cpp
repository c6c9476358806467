// `identity`: IdentityFormer's token mixer (arXiv 2210.13452, §3; docs/schemes.md): no token mixing at all.
//
//   y_t = u_t
//
// With the block's residual the layer adds RMSNorm(x_t) to x_t.  A model whose only mixers are
// `identity` sees one token per position: a bigram model, the floor every mixer must beat.
// Params 0, FLOPs 0, state 0.

#include "core/register_mixer.h"
#include "core/registry.h"

namespace mixlab {
namespace {

class IdentityMixer : public TokenMixer {
 public:
  torch::Tensor forward(const torch::Tensor& x) override { return x; }

  // Nothing is computed and nothing is kept.
  Cost cost(const CostShape&) const override { return {}; }

  bool has_step() const override { return true; }
  MixerState initial_state(int64_t, const torch::TensorOptions&) const override { return {}; }
  torch::Tensor step(const torch::Tensor& x_t, MixerState& state) override {
    state.position += 1;
    return x_t;
  }
};

}  // namespace

const RegisterMixer<IdentityMixer> kIdentityMixerRegistration(
    "identity",
    "IdentityFormer: no token mixing (y = u), the bigram floor");

}  // namespace mixlab
