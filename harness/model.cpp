#include "harness/model.h"

namespace mixlab {

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  auto compute = x.scalar_type() == torch::kFloat64 ? x : x.to(torch::kFloat32);
  auto normalised = compute * torch::rsqrt(compute.square().mean(-1, /*keepdim=*/true) + eps);
  return normalised.to(x.scalar_type()) * weight;
}

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
  final_norm_ = register_module("norm", RMSNorm(config.d_model, config.norm_eps));
  if (!config.tie_embeddings) {
    lm_head_ = register_module("lm_head",
        torch::nn::Linear(torch::nn::LinearOptions(config.d_model, config.vocab_size).bias(false)));
    torch::NoGradGuard no_grad;
    lm_head_->weight.normal_(0.0, config.init_std);
  }
}

torch::Tensor LanguageModelImpl::hidden_states(const torch::Tensor& tokens) {
  auto h = embed_tokens_(tokens);  // [B, N, d]
  for (size_t i = 0; i < sublayers_.size(); ++i) h = h + sublayers_[i]->forward(norms_[i](h));
  return final_norm_(h);
}

torch::Tensor LanguageModelImpl::logits(const torch::Tensor& hidden) {
  return config_.tie_embeddings ? torch::matmul(hidden, embed_tokens_->weight.t()) : lm_head_(hidden);
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
  return total.defined() ? total : torch::zeros({});
}

Cost LanguageModelImpl::cost(const CostShape& shape) const {
  Cost total;
  for (const auto& sublayer : sublayers_) total += sublayer->cost(shape);
  const double tokens = static_cast<double>(shape.batch) * shape.seq_len;
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
  return states;
}

torch::Tensor LanguageModelImpl::step(const torch::Tensor& tokens_t, std::vector<MixerState>& states) {
  auto h = embed_tokens_(tokens_t);  // [B, d]
  for (size_t i = 0; i < sublayers_.size(); ++i) h = h + sublayers_[i]->step(norms_[i](h), states[i]);
  return logits(final_norm_(h));
}

int64_t LanguageModelImpl::parameter_count() const {
  int64_t total = 0;
  for (const auto& p : parameters()) total += p.numel();
  return total;
}

int64_t LanguageModelImpl::embedding_parameter_count() const {
  int64_t total = embed_tokens_->weight.numel();
  if (!config_.tie_embeddings) total += lm_head_->weight.numel();
  return total;
}

}  // namespace mixlab
