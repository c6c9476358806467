#include "harness/model.h"

#include "core/ab_switch.h"
#include "core/compat.h"
#include "core/skinny_linear.h"

#include "harness/add_rms_norm.h"
#include "harness/token_embedding.h"
#include "harness/scone.h"

#include <cmath>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <tuple>

namespace mixlab {

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) { return mixlab::rms_norm(x, weight, eps); }

LanguageModelImpl::LanguageModelImpl(const ModelConfig& config) : config_(config) {
  if (config.pattern.empty()) throw RegistryError("model.pattern is empty: give at least one sublayer");
  embed_tokens_ = register_module("embed_tokens", torch::nn::Embedding(config.vocab_size, config.d_model));
  {
    torch::NoGradGuard no_grad;
    embed_tokens_->weight.normal_(0.0, config.init_std);
  }
  // Parameter names: layers.<i>.norm.weight, layers.<i>.<mixer>.<weight>, i over all sublayers.
  auto layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t layer = 0; layer < config.n_layers; ++layer) {
    for (const auto& sublayer : config.pattern) {
      MixerContext context{config.d_model, config.n_heads, layer, config.n_layers, config.init_std};
      auto holder = std::make_shared<torch::nn::Module>();
      norms_.push_back(holder->register_module("norm", RMSNorm(config.d_model, config.norm_eps)));
      sublayers_.push_back(holder->register_module(
          sublayer.mixer, Registry::global().create(sublayer.mixer, context, sublayer.params)));
      layers->push_back(holder);
    }
  }
  if (config.layer_averaging && config.routing.enabled())
    throw RegistryError("model.layer_averaging and model.routing cannot be combined");
  if (config.layer_averaging)
    averaging_ = register_module("layer_averaging", LayerAveraging(static_cast<int64_t>(sublayers_.size())));
  for (int64_t layer = 0; layer < config.n_layers; ++layer)
    routers_.push_back(config.routing.routes(layer)
                           ? register_module("router_" + std::to_string(layer),
                                             BlockRouter(config.routing, config.d_model, config.init_std))
                           : BlockRouter{nullptr});
  if (config.embedding == "scone") {
    MixerContext context{config.d_model, config.n_heads, 0, 1, config.init_std};
    scone_ = register_module("scone", std::make_shared<SconeEmbeddingImpl>(context, config.norm_eps, embed_tokens_,
                                                                           config.embedding_params));
  } else if (config.embedding != "standard") {
    throw RegistryError("model.embedding: unknown embedding '" + config.embedding + "'; valid: standard, scone");
  }
  final_norm_ = register_module("norm", RMSNorm(config.d_model, config.norm_eps));
  if (!config.tie_embeddings) {
    lm_head_ = register_module("lm_head",
        torch::nn::Linear(torch::nn::LinearOptions(config.d_model, config.vocab_size).bias(false)));
    torch::NoGradGuard no_grad;
    lm_head_->weight.normal_(0.0, config.init_std);
  }
}

// On the plain path the residual add of sublayer i and the norm that reads its result (sublayer
// i + 1's, or the final one) run as one add_rms_norm: `normed` carries RMSNorm_{i+1}(h) to the next
// iteration.  A routed layer and layer averaging keep the add and the norm apart.
torch::Tensor LanguageModelImpl::hidden_states(const torch::Tensor& tokens) {
  auto h = scone_ ? scone_->forward(tokens) : token_embedding(embed_tokens_->weight, tokens);  // [B, N, d]
  // Embedding dropout (as Zoology trains its MQAR models, arXiv 2312.04927): while training, each
  // element is zeroed with probability p and the rest scaled by 1 / (1 − p); the identity in eval.
  if (config_.embedding_dropout > 0.0 && is_training()) h = torch::dropout(h, config_.embedding_dropout, true);
  std::vector<torch::Tensor> history{h};                              // x_0 .. x_ℓ for layer averaging
  const size_t per_layer = config_.pattern.size();
  torch::Tensor normed;  // RMSNorm_i(h) when the previous add made it, else undefined
  for (size_t i = 0; i < sublayers_.size(); ++i) {
    if (auto& router = routers_[i / per_layer]) {
      h = routed_layer(i, per_layer, router, h);
      i += per_layer - 1;
      continue;
    }
    const auto branch = sublayers_[i]->forward_with_residual(normed.defined() ? normed : norms_[i](h), h);
    add_residual(i, branch, h, normed, history);
  }
  return normed.defined() ? normed : final_norm_(h);
}

// h ← h + branch after plain sublayer i (then layer averaging over `history` where the model has
// it).  Where the norm that reads h next can run with the add (norm_after), h and normed =
// RMSNorm_{i+1}(h) come from one add_rms_norm; otherwise normed is left undefined.
void LanguageModelImpl::add_residual(size_t i, const torch::Tensor& branch, torch::Tensor& h, torch::Tensor& normed,
                                     std::vector<torch::Tensor>& history) {
  normed = torch::Tensor();
  if (averaging_) {
    h = h + branch;
    history.push_back(h);
    h = averaging_(history);
  } else if (const RMSNormImpl* next = norm_after(i)) {
    std::tie(h, normed) = add_rms_norm(h, branch, next->weight, next->eps);
  } else {
    h = h + branch;
  }
}

// The norm that reads h after plain sublayer i: sublayer i + 1's, or the final norm after the last
// sublayer; nullptr where sublayer i + 1 opens a routed layer (its norms read the routed tokens).
const RMSNormImpl* LanguageModelImpl::norm_after(size_t i) const {
  if (i + 1 == sublayers_.size()) return final_norm_.get();
  return routers_[(i + 1) / config_.pattern.size()] ? nullptr : norms_[i + 1].get();
}

// Per sequence: pack the selected tokens in order, run the layer's sublayers on them (pre-norm
// residual), and mix back h + w·(F(h) − h) at their positions; the others keep h.
torch::Tensor LanguageModelImpl::routed_layer(size_t first, size_t count, BlockRouter& router, const torch::Tensor& h) {
  auto decision = router->route(h);
  std::vector<torch::Tensor> rows;
  for (int64_t b = 0; b < h.size(0); ++b) {
    auto index = decision.selected[b].nonzero().squeeze(1);  // [k], ascending
    if (index.size(0) == 0) {
      rows.push_back(h[b]);
      continue;
    }
    auto start = h[b].index_select(0, index).unsqueeze(0);  // [1, k, d]
    auto x = start;
    for (size_t j = first; j < first + count; ++j) x = x + sublayers_[j]->forward_with_residual(norms_[j](x), x);
    auto mixed = start + decision.weight[b].index_select(0, index).view({1, -1, 1}) * (x - start);
    rows.push_back(h[b].index_copy(0, index, mixed.squeeze(0)));
  }
  return torch::stack(rows, 0);
}

torch::Tensor LanguageModelImpl::logits(const torch::Tensor& hidden) {
  return config_.tie_embeddings ? torch::matmul(hidden, embed_tokens_->weight.t()) : lm_head_(hidden);
}

const torch::Tensor& LanguageModelImpl::head_weight() const {
  return config_.tie_embeddings ? embed_tokens_->weight : lm_head_->weight;
}

torch::Tensor LanguageModelImpl::forward(const torch::Tensor& tokens) {
  return logits(hidden_states(tokens));
}

torch::Tensor LanguageModelImpl::auxiliary_loss() const {
  torch::Tensor total;
  for (const auto& sublayer : sublayers_) {
    auto loss = sublayer->auxiliary_loss();
    if (loss.defined()) total = total.defined() ? total + loss : loss;
  }
  for (const auto& router : routers_) {
    if (!router) continue;
    auto loss = router->auxiliary_loss();
    if (loss.defined()) total = total.defined() ? total + loss : loss;
  }
  // None: a zero on the model's device (a CPU zero would be copied to the GPU inside a captured step).
  return total.defined() ? total : torch::zeros({}, head_weight().options().dtype(torch::kFloat32));
}

Cost LanguageModelImpl::cost(const CostShape& shape) const {
  Cost total;
  const size_t per_layer = config_.pattern.size();
  const double tokens = static_cast<double>(shape.batch) * shape.seq_len;
  for (size_t i = 0; i < sublayers_.size(); ++i) {
    const auto& router = routers_[i / per_layer];
    if (!router) {
      total += sublayers_[i]->cost(shape);
      continue;
    }
    // A routed layer works on the k = routed fraction · N tokens each sequence sends through it
    // (the last forward's fraction; exact for MoD training, k = ⌈capacity·N⌉).
    CostShape routed = shape;
    routed.seq_len = static_cast<int64_t>(std::ceil(router->routed_fraction() * shape.seq_len - 1e-9));
    total += sublayers_[i]->cost(routed);
    if (i % per_layer == 0) {
      total.flops += router->flops(tokens);
      total.matmul_flops += router->matmul_flops(tokens);
    }
  }
  if (averaging_) total.flops += averaging_->flops(tokens, config_.d_model);
  if (scone_) total += scone_->cost(shape);
  const double head = 2.0 * tokens * config_.d_model * config_.vocab_size;
  const double norms = 4.0 * tokens * config_.d_model * static_cast<double>(sublayers_.size() + 1);
  total.flops += head + norms;
  total.matmul_flops += head;
  return total;
}

bool LanguageModelImpl::has_step() const {
  for (const auto& sublayer : sublayers_)
    if (!sublayer->has_step()) return false;
  return true;
}

std::vector<MixerState> LanguageModelImpl::initial_states(int64_t batch,
                                                          const torch::TensorOptions& options) const {
  std::vector<MixerState> states;
  for (const auto& sublayer : sublayers_) states.push_back(sublayer->initial_state(batch, options));
  if (config_.routing.enabled()) states.emplace_back();  // the token position, for D-LLM's first tokens
  if (scone_) states.push_back(scone_->initial_state(batch, options));  // the last max_n − 1 tokens
  return states;
}

torch::Tensor LanguageModelImpl::step(const torch::Tensor& tokens_t, std::vector<MixerState>& states) {
  auto h = scone_ ? scone_->step(tokens_t, states.back()) : embed_tokens_(tokens_t);  // [B, d]
  std::vector<torch::Tensor> history{h};
  const size_t per_layer = config_.pattern.size();
  for (size_t i = 0; i < sublayers_.size(); ++i) {
    if (auto& router = routers_[i / per_layer]) {
      if (h.size(0) != 1)
        throw std::invalid_argument("decoding with model.routing runs one sequence at a time (batch 1), got batch " +
                                    std::to_string(h.size(0)));
      auto decision = router->route_one(h, states[sublayers_.size()].position);
      if (decision.selected.item<bool>()) {
        auto x = h;
        for (size_t j = i; j < i + per_layer; ++j) x = x + sublayers_[j]->step_with_residual(norms_[j](x), x, states[j]);
        h = h + decision.weight.view({1, 1}) * (x - h);
      }
      i += per_layer - 1;
      continue;
    }
    h = h + sublayers_[i]->step_with_residual(norms_[i](h), h, states[i]);
    if (averaging_) {
      history.push_back(h);
      h = averaging_(history);
    }
  }
  if (config_.routing.enabled()) states[sublayers_.size()].position += 1;
  return logits(final_norm_(h));
}

bool LanguageModelImpl::has_static_step() const {
  if (scone_ || config_.routing.enabled()) return false;
  for (const auto& sublayer : sublayers_)
    if (!sublayer->has_static_step()) return false;
  return true;
}

std::vector<MixerState> LanguageModelImpl::static_states(int64_t batch, int64_t capacity,
                                                         const torch::TensorOptions& options) const {
  std::vector<MixerState> states;
  for (const auto& sublayer : sublayers_) states.push_back(sublayer->static_state(batch, capacity, options));
  return states;
}

namespace {

// Whether the static step hands each pre-norm to its sublayer's first product and the residual add
// to its output projection (TokenMixer::fused_static_step): not when MIXLAB_DECODE_FUSED_NORM is "0"
// (core/ab_switch.h; the A/B of bench/decode_issue13.sh).
bool fused_norm_enabled() {
  static const bool enabled = ab_switch_on("MIXLAB_DECODE_FUSED_NORM");
  return enabled;
}

}  // namespace

// As step(), sublayer by sublayer.  A sublayer with fused_static_step() reads h itself, its norm
// folded into its first product, and its output projection adds to h in its store
// (skinny_linear_add): on CUDA no norm or add kernel is left between two sublayers.  Others go
// through static_step() on the normalised h, with the add and the next norm as add_rms_norm.
torch::Tensor LanguageModelImpl::static_step(const torch::Tensor& tokens_t, std::vector<MixerState>& states,
                                             const StepPosition& at) {
  auto h = embed_tokens_(tokens_t);  // [B, d]
  std::vector<torch::Tensor> history{h};
  torch::Tensor normed;  // RMSNorm_i(h) when the previous add made it, else undefined
  const bool fuse = !averaging_ && fused_norm_enabled();
  std::map<SlotRule, torch::Tensor> slots;  // each slot rule's slot at t, made once for every sublayer
  for (size_t i = 0; i < sublayers_.size(); ++i) {
    StepPosition sublayer_at = at;
    if (const auto rule = sublayers_[i]->static_slot_rule()) {
      auto& slot = slots[*rule];
      if (!slot.defined()) slot = rule->of(at.position);
      sublayer_at.slot = slot;
    }
    if (fuse && sublayers_[i]->has_fused_static_step()) {
      const auto step =
          sublayers_[i]->fused_static_step(h, InputNorm{norms_[i]->weight, norms_[i]->eps}, states[i], sublayer_at);
      h = skinny_linear_add(h, step.activations, step.weight, step.bias);  // h + output projection
      normed = torch::Tensor();
      continue;
    }
    const auto branch = sublayers_[i]->static_step(normed.defined() ? normed : norms_[i](h), states[i], sublayer_at);
    add_residual(i, branch, h, normed, history);
  }
  // The logits of one token per sequence: the few-row product (core/skinny_linear.h), the final
  // norm folded in unless the last add made it.
  const auto bias = config_.tie_embeddings ? torch::Tensor() : lm_head_->bias;
  if (normed.defined()) return skinny_linear(normed, head_weight(), bias);
  if (fuse) return skinny_linear(h, head_weight(), bias, InputNorm{final_norm_->weight, final_norm_->eps});
  return skinny_linear(final_norm_(h), head_weight(), bias);
}

torch::Tensor LanguageModelImpl::static_prefill(const torch::Tensor& tokens, std::vector<MixerState>& states) {
  auto h = embed_tokens_(tokens);  // [B, N, d]
  std::vector<torch::Tensor> history{h};
  for (size_t i = 0; i < sublayers_.size(); ++i) {
    h = h + sublayers_[i]->static_prefill(norms_[i](h), states[i]);
    if (averaging_) {
      history.push_back(h);
      h = averaging_(history);
    }
  }
  return logits(final_norm_(h.select(1, h.size(1) - 1)));
}

int64_t LanguageModelImpl::parameter_count() const {
  int64_t total = 0;
  for (const auto& p : parameters()) total += p.numel();
  return total;
}

int64_t LanguageModelImpl::embedding_parameter_count() const {
  int64_t total = embed_tokens_->weight.numel();
  if (!config_.tie_embeddings) total += lm_head_->weight.numel();
  if (scone_)  // the f-gram model's own weights (shared token embedding counted above)
    for (const auto& item : scone_->named_parameters())
      if (item.key().rfind("fgram_model.", 0) == 0) total += item.value().numel();
  return total;
}

}  // namespace mixlab
