#pragma once
// Cross-layer weighted averaging, MambaMixer's "weighted averaging of model outputs" (Behrouz,
// Santacatterina & Zabih 2024, arXiv 2403.19888, §3.3), the model option `model.layer_averaging`.
//
// With x_0 the embedding and x_ℓ the residual stream after sublayer ℓ (ℓ = 1..L over all sublayers
// of all layers), the stream that sublayer ℓ + 1 reads is a learned average of everything before:
//   x̄_ℓ = Σ_{i=0}^{ℓ} α_{ℓ,i} x_i,        x_{ℓ+1} = x̄_ℓ + Sublayer_{ℓ+1}( RMSNorm(x̄_ℓ) )
// and the final norm reads x̄_L.  α_{ℓ,ℓ} = 1, α_{ℓ,i<ℓ} = 0 at initialisation, so a fresh model equals
// the plain pre-norm stack (the DenseFormer initialisation; MambaMixer averages the outputs of its
// token and channel mixers in the same way).  Position-wise: causal, no decode state, no matrix
// products; 2·(ℓ+1)·d FLOPs per token after sublayer ℓ.

#include <torch/torch.h>

#include <vector>

namespace mixlab {

class LayerAveragingImpl : public torch::nn::Module {
 public:
  explicit LayerAveragingImpl(int64_t n_sublayers);
  // history: x_0 .. x_ℓ (each [..., d]) -> x̄_ℓ
  torch::Tensor forward(const std::vector<torch::Tensor>& history);
  // FLOPs of all L averages for `tokens` tokens of width d.
  double flops(double tokens, int64_t d_model) const;

 private:
  std::vector<torch::Tensor> alphas_;  // alphas_[ℓ−1]: [ℓ+1], registered as "alpha_<ℓ>"
};
TORCH_MODULE(LayerAveraging);

}  // namespace mixlab
