#pragma once
// Block-level token routers, the model option `model.routing` (DTRNet's baselines, Sharma et al.
// 2025, arXiv 2509.00925, §4): a routed layer runs its whole sublayer group (mixer and MLP) on the
// tokens the router picks, packed in order; the other tokens skip the layer unchanged.
//
// MoD, Mixture-of-Depths (Raposo et al. 2024, arXiv 2404.02258, §3.1-§3.5):
//   r_t = w_r·h_t + b_r                                       router, on the raw residual h
//   training:  selected = the top-k of r in each sequence, k = ⌈capacity·N⌉   (reads the future: §3.5)
//   inference: selected ⟺ p_t > 0,  p_t = w_p·sg(h_t) + b_p                   causal predictor
//   out_t = h_t + σ(r_t)·(F(h)_t − h_t)  (selected),   h_t  (skipped)         F: the layer on the packed tokens
//   L_aux = aux_coef · BCE(σ(p_t), [t selected])                              trains the predictor only
// D-LLM (Jiang et al., NeurIPS 2024, §3):
//   π_t = W_2 SiLU(RMSNorm(W_1 h_t + b_1)) + b_2 ∈ R²  (skip, execute),  b_2 = (0.1, 2.0) at init
//   training:  w_t = hard Gumbel-softmax(π_t, τ = 1)[execute] (straight-through);  inference: w_t = [softmax(π_t)[execute] > 0.5]
//   the first `always_first` tokens are executed (w_t = 1);  selected ⟺ w_t = 1
//   out_t = h_t + w_t·(F(h)_t − h_t);  L_aux = aux_coef · |mean_t w_t − target|
// Both are causal at inference (a per-token rule; the packed tokens keep their order), so decoding
// steps a routed layer only for selected tokens and its sublayers' caches hold those tokens alone.
// Positions inside the routed layer are packed positions (the k-th selected token is at k−1).

#include <torch/torch.h>

#include <string>

namespace mixlab {

struct BlockRoutingConfig {
  std::string router = "none";  // none | mod | dllm
  double capacity = 0.125;      // MoD: fraction of each sequence routed through the layer in training
  int64_t first_layer = -1;     // the first routed layer; −1 = the router's default (mod 1, dllm 2)
  int64_t every = -1;           // then every `every` layers; −1 = default (mod 2, dllm 1)
  double aux_coef = -1;         // −1 = default (mod 0.01, dllm 8e-4)
  double target = 0.55;         // D-LLM Ω: the execution rate the auxiliary loss pulls towards
  int64_t always_first = 2;     // D-LLM: the first tokens of a sequence always execute
  int64_t router_hidden = 0;    // D-LLM router width; 0 = d_model/2

  bool enabled() const { return router != "none"; }
  bool routes(int64_t layer) const;
};

class BlockRouterImpl : public torch::nn::Module {
 public:
  BlockRouterImpl(const BlockRoutingConfig& config, int64_t d_model, double init_std);

  struct Decision {
    torch::Tensor selected;  // [B, N] bool
    torch::Tensor weight;    // [B, N]: the factor on F(h) − h
  };
  // h: [B, N, d] -> the decision for every token (training or inference rule by is_training()).
  Decision route(const torch::Tensor& h);
  // One token at `position` of the sequence, inference rule: h_t: [B, d] -> [B] each.
  Decision route_one(const torch::Tensor& h_t, int64_t position);

  torch::Tensor auxiliary_loss() const { return last_aux_loss_; }
  // The fraction of tokens the last forward sent through the layer; before any, the configured one.
  double routed_fraction() const;
  // The router's own forward FLOPs for `tokens` tokens, and the part that is matrix products.
  double flops(double tokens) const;
  double matmul_flops(double tokens) const;

 private:
  torch::Tensor dllm_logits(const torch::Tensor& h);  // [..., d] -> [..., 2]

  BlockRoutingConfig config_;
  int64_t d_model_, hidden_ = 0;
  torch::nn::Linear router_{nullptr}, predictor_{nullptr}, hidden_in_{nullptr}, hidden_out_{nullptr};
  torch::Tensor hidden_norm_;
  torch::Tensor last_aux_loss_;
  double last_fraction_ = -1;
};
TORCH_MODULE(BlockRouter);

}  // namespace mixlab
