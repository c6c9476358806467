#pragma once
// The language model mixlab builds from a block pattern (docs/design.md, "The mixer contract").
//
//   h_0 = E[tokens]                                     E: [vocab, d_model]
//   for layer in 0..n_layers-1, for sublayer in pattern:
//       h = h + Sublayer( RMSNorm(h) )                  pre-norm residual
//   logits = RMSNorm(h) · Eᵀ   (tied)   or   lm_head(RMSNorm(h))
//
// RMSNorm(x) = x · rsqrt(mean(x²) + eps) · w, statistics in float32 (or float64 for float64 input).

#include "harness/block_router.h"
#include "harness/layer_averaging.h"
#include "core/registry.h"

#include <string>
#include <vector>

namespace mixlab {

struct SublayerConfig {
  std::string mixer;                             // registry name
  std::map<std::string, ParamValue> params;      // as given (defaults filled by the registry)
};

struct ModelConfig {
  std::string name = "custom";                   // preset name or "custom"
  int64_t vocab_size = 256;
  int64_t d_model = 64;
  int64_t n_heads = 4;
  int64_t n_layers = 2;
  std::vector<SublayerConfig> pattern;           // repeated n_layers times
  bool tie_embeddings = true;
  double norm_eps = 1e-6;
  double init_std = 0.02;
  double embedding_dropout = 0.0;                // dropout on the token embeddings while training, in [0, 1)
  std::string embedding = "standard";            // "standard" or "scone" (harness/scone.h)
  std::map<std::string, ParamValue> embedding_params;  // the embedding's options (scone: max_n, fgram_layers, fgram_file)
  bool layer_averaging = false;                  // MambaMixer's cross-layer weighted averaging (harness/layer_averaging.h)
  BlockRoutingConfig routing;                    // MoD / D-LLM block routers (harness/block_router.h)
};

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

class SconeEmbeddingImpl;

class LanguageModelImpl : public torch::nn::Module {
 public:
  explicit LanguageModelImpl(const ModelConfig& config);

  // tokens: [B, N] int64 -> logits [B, N, vocab]
  torch::Tensor forward(const torch::Tensor& tokens);
  // tokens: [B, N] -> final normalised hidden states [B, N, d_model]
  torch::Tensor hidden_states(const torch::Tensor& tokens);
  // hidden: [B, N, d] -> logits = hidden · head_weight()ᵀ
  torch::Tensor logits(const torch::Tensor& hidden);
  // The head's matrix, [vocab, d]: the token embedding when tied, else lm_head's weight.
  const torch::Tensor& head_weight() const;

  // Sum of the sublayers' auxiliary losses from the last forward (zero when none has one).
  torch::Tensor auxiliary_loss() const;

  // Analytic forward cost of the whole model for `shape` (embedding lookup is free; the LM head
  // is 2·N·d·vocab; norms ~4·N·d each).
  Cost cost(const CostShape& shape) const;

  // Decoding: one token per sequence. tokens_t: [B] -> logits [B, vocab].  With block routing the
  // batch must be 1 (a routed layer's caches hold the tokens that sequence routed).
  bool has_step() const;
  std::vector<MixerState> initial_states(int64_t batch, const torch::TensorOptions& options) const;
  torch::Tensor step(const torch::Tensor& tokens_t, std::vector<MixerState>& states);

  // Static decoding (TokenMixer::static_step; docs/decode.md): states preallocated for `capacity`
  // tokens, written in place, the position a device tensor, so that the step can be captured as a
  // CUDA graph.  Every sublayer must have static_step(); no SCONE embedding, no block routing.
  // tokens_t: [B] -> logits [B, vocab].  Does not advance at.position.
  bool has_static_step() const;
  std::vector<MixerState> static_states(int64_t batch, int64_t capacity, const torch::TensorOptions& options) const;
  torch::Tensor static_step(const torch::Tensor& tokens_t, std::vector<MixerState>& states, const StepPosition& at);
  // The prompt tokens: [B, N] through every sublayer's static_prefill (N ≤ the states' capacity):
  // returns the logits of its last position, [B, vocab]; decoding continues at position N.
  torch::Tensor static_prefill(const torch::Tensor& tokens, std::vector<MixerState>& states);

  int64_t parameter_count() const;
  int64_t embedding_parameter_count() const;

  const ModelConfig& config() const { return config_; }
  const std::vector<TokenMixerPtr>& sublayers() const { return sublayers_; }
  // The SCONE embedding when model.embedding = "scone", else nullptr.
  SconeEmbeddingImpl* scone() const { return scone_.get(); }

 private:
  ModelConfig config_;
  torch::nn::Embedding embed_tokens_{nullptr};
  std::shared_ptr<SconeEmbeddingImpl> scone_;
  std::vector<RMSNorm> norms_;
  std::vector<TokenMixerPtr> sublayers_;
  LayerAveraging averaging_{nullptr};
  std::vector<BlockRouter> routers_;             // per layer; nullptr where the layer is not routed
  RMSNorm final_norm_{nullptr};
  torch::nn::Linear lm_head_{nullptr};

  // One routed layer (sublayers first .. first + count − 1) on the tokens its router selects.
  torch::Tensor routed_layer(size_t first, size_t count, BlockRouter& router, const torch::Tensor& h);
  // The RMSNorm fused with plain sublayer i's residual add (hidden_states, static_step), or nullptr for
  // none; add_residual applies it.
  const RMSNormImpl* norm_after(size_t i) const;
  void add_residual(size_t i, const torch::Tensor& branch, torch::Tensor& h, torch::Tensor& normed,
                    std::vector<torch::Tensor>& history);
};
TORCH_MODULE(LanguageModel);

}  // namespace mixlab
