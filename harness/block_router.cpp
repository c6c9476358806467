#include "harness/block_router.h"

#include <cmath>

namespace mixlab {

bool BlockRoutingConfig::routes(int64_t layer) const {
  if (!enabled()) return false;
  const int64_t first = first_layer >= 0 ? first_layer : (router == "mod" ? 1 : 2);
  const int64_t step = every > 0 ? every : (router == "mod" ? 2 : 1);
  return layer >= first && (layer - first) % step == 0;
}

namespace {
torch::nn::Linear make_linear(torch::nn::Module& owner, const char* name, int64_t in, int64_t out, double std) {
  auto linear = owner.register_module(name, torch::nn::Linear(in, out));
  torch::NoGradGuard no_grad;
  linear->weight.normal_(0.0, std);
  linear->bias.zero_();
  return linear;
}
}  // namespace

BlockRouterImpl::BlockRouterImpl(const BlockRoutingConfig& config, int64_t d_model, double init_std)
    : config_(config), d_model_(d_model) {
  if (config_.aux_coef < 0) config_.aux_coef = config_.router == "mod" ? 0.01 : 8e-4;
  if (config_.router == "mod") {
    router_ = make_linear(*this, "router", d_model, 1, init_std);
    predictor_ = make_linear(*this, "predictor", d_model, 1, init_std);
  } else {
    hidden_ = config_.router_hidden > 0 ? config_.router_hidden : std::max<int64_t>(1, d_model / 2);
    hidden_in_ = make_linear(*this, "router_in", d_model, hidden_, init_std);
    hidden_norm_ = register_parameter("router_norm", torch::ones({hidden_}));
    hidden_out_ = make_linear(*this, "router_out", hidden_, 2, init_std);
    torch::NoGradGuard no_grad;
    hidden_out_->bias[0] = 0.1;  // skip
    hidden_out_->bias[1] = 2.0;  // execute: favoured at the start (D-LLM's initialisation)
  }
}

// π = W_2 SiLU(RMSNorm(W_1 h + b_1)) + b_2
torch::Tensor BlockRouterImpl::dllm_logits(const torch::Tensor& h) {
  auto a = hidden_in_->forward(h);
  a = a * torch::rsqrt(a.square().mean(-1, true) + 1e-6) * hidden_norm_;
  return hidden_out_->forward(torch::silu(a));
}

BlockRouterImpl::Decision BlockRouterImpl::route(const torch::Tensor& h) {
  const int64_t batch = h.size(0), n = h.size(1);
  Decision decision;
  if (config_.router == "mod") {
    auto r = router_->forward(h).squeeze(-1);                     // [B, N]
    auto p = predictor_->forward(h.detach()).squeeze(-1);         // [B, N]
    if (is_training()) {
      const int64_t k = std::min<int64_t>(n, static_cast<int64_t>(std::ceil(config_.capacity * n)));
      auto top = std::get<1>(r.detach().topk(std::max<int64_t>(k, 1), -1));  // [B, k]
      decision.selected = torch::zeros({batch, n}, h.options().dtype(torch::kBool)).scatter(1, top, true);
      last_aux_loss_ = config_.aux_coef *
                       torch::binary_cross_entropy_with_logits(p, decision.selected.to(p.scalar_type()));
    } else {
      decision.selected = p > 0;
      last_aux_loss_ = torch::Tensor();
    }
    decision.weight = torch::sigmoid(r);
  } else {
    auto logits = dllm_logits(h);                                 // [B, N, 2]
    torch::Tensor execute;
    if (is_training()) {
      auto soft = torch::softmax(logits - torch::log(-torch::log(torch::rand_like(logits).clamp(1e-10, 1 - 1e-10))), -1);
      auto hard = torch::one_hot(soft.argmax(-1), 2).to(soft.scalar_type());
      execute = (hard - soft.detach() + soft).select(-1, 1);      // straight-through
    } else {
      execute = (torch::softmax(logits, -1).select(-1, 1) > 0.5).to(h.scalar_type());
    }
    auto first = torch::arange(n, h.options().dtype(torch::kLong)) < config_.always_first;  // [N]
    execute = torch::where(first.unsqueeze(0), torch::ones_like(execute), execute);
    decision.selected = execute.detach() > 0.5;
    decision.weight = execute;
    last_aux_loss_ = is_training() ? config_.aux_coef * (execute.mean() - config_.target).abs() : torch::Tensor();
  }
  last_fraction_ = decision.selected.to(torch::kDouble).mean().item<double>();
  return decision;
}

BlockRouterImpl::Decision BlockRouterImpl::route_one(const torch::Tensor& h_t, int64_t position) {
  Decision decision;
  if (config_.router == "mod") {
    decision.selected = predictor_->forward(h_t).squeeze(-1) > 0;
    decision.weight = torch::sigmoid(router_->forward(h_t).squeeze(-1));
  } else {
    auto execute = torch::softmax(dllm_logits(h_t), -1).select(-1, 1) > 0.5;
    if (position < config_.always_first) execute = torch::ones_like(execute);
    decision.selected = execute;
    decision.weight = execute.to(h_t.scalar_type());
  }
  return decision;
}

double BlockRouterImpl::routed_fraction() const {
  if (last_fraction_ >= 0) return last_fraction_;
  return config_.router == "mod" ? config_.capacity : config_.target;
}

// MoD: router and predictor, 2·d each per token (matrix products).  D-LLM: 2·d·r + 2·r·2 for the
// two layers (matrix products) and ~5·r for the norm and SiLU.
double BlockRouterImpl::matmul_flops(double tokens) const {
  if (config_.router == "mod") return 4.0 * tokens * d_model_;
  return tokens * (2.0 * d_model_ * hidden_ + 4.0 * hidden_);
}

double BlockRouterImpl::flops(double tokens) const {
  return matmul_flops(tokens) + (config_.router == "mod" ? 0.0 : 5.0 * tokens * hidden_);
}

}  // namespace mixlab
