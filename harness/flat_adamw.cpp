#include "harness/flat_adamw.h"

#include <stdexcept>

namespace mixlab {

FlatAdamW::FlatAdamW(const std::vector<std::pair<std::string, torch::Tensor>>& parameters,
                     const AdamWSettings& settings)
    : settings_(settings) {
  if (parameters.empty()) throw std::invalid_argument("FlatAdamW: the model has no parameters");
  const auto options = parameters.front().second.options();
  // Matrices first: the decayed elements are the prefix [0, decayed_elements_).
  std::vector<const std::pair<std::string, torch::Tensor>*> ordered;
  for (const auto& item : parameters)
    if (item.second.dim() >= 2) ordered.push_back(&item);
  for (const auto& item : parameters)
    if (item.second.dim() < 2) ordered.push_back(&item);
  int64_t offset = 0;
  for (const auto* item : ordered) {
    const auto& [name, p] = *item;
    if (p.dtype() != options.dtype() || p.device() != options.device())
      throw std::invalid_argument("FlatAdamW: parameter '" + name + "' is not of the first parameter's dtype and device");
    if (!p.requires_grad()) throw std::invalid_argument("FlatAdamW: parameter '" + name + "' does not require grad");
    slices_.push_back({name, offset, p.numel(), p.sizes().vec()});
    if (p.dim() >= 2) {
      decayed_elements_ += p.numel();
      decayed_names_.push_back(name);
    }
    offset += p.numel();
  }
  flat_ = torch::empty({offset}, options);
  flat_grad_ = torch::zeros({offset}, options);
  exp_avg_ = torch::zeros({offset}, options);
  exp_avg_sq_ = torch::zeros({offset}, options);
  const auto scalar = torch::TensorOptions().dtype(torch::kFloat64).device(options.device());
  step_ = torch::zeros({}, scalar);
  lr_ = torch::zeros({}, scalar);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < ordered.size(); ++i) {
    torch::Tensor p = ordered[i]->second;  // the model's tensor object (shared implementation)
    auto value = view_of(flat_, slices_[i]);
    value.copy_(p);
    p.set_data(value);                                   // θ now lives in flat_
    p.mutable_grad() = view_of(flat_grad_, slices_[i]);  // backward accumulates into flat_grad_
  }
}

torch::Tensor FlatAdamW::view_of(const torch::Tensor& flat, const Slice& slice) const {
  return flat.narrow(0, slice.offset, slice.numel).view(slice.shape);
}

void FlatAdamW::set_learning_rate(double lr) { lr_.fill_(lr); }

void FlatAdamW::zero_grad() { flat_grad_.zero_(); }

void FlatAdamW::step() {
  torch::NoGradGuard no_grad;
  const double beta1 = settings_.beta1, beta2 = settings_.beta2;
  step_.add_(1);
  const auto bias_correction1 = 1 - torch::pow(beta1, step_);             // [] 1 − β₁ᵗ
  const auto bias_correction2_sqrt = (1 - torch::pow(beta2, step_)).sqrt();  // [] √(1 − β₂ᵗ)
  if (settings_.weight_decay != 0 && decayed_elements_ > 0)
    flat_.narrow(0, 0, decayed_elements_).mul_(1 - lr_ * settings_.weight_decay);
  exp_avg_.mul_(beta1).add_(flat_grad_, 1 - beta1);
  exp_avg_sq_.mul_(beta2).addcmul_(flat_grad_, flat_grad_, 1 - beta2);
  const auto denominator = (exp_avg_sq_.sqrt() / bias_correction2_sqrt).add_(settings_.eps);
  flat_.sub_(exp_avg_.div(denominator).mul_(lr_ / bias_correction1));
}

int64_t FlatAdamW::steps_taken() const { return static_cast<int64_t>(step_.item<double>()); }

std::vector<torch::Tensor> FlatAdamW::snapshot() const {
  return {flat_.clone(), exp_avg_.clone(), exp_avg_sq_.clone(), step_.clone()};
}

void FlatAdamW::restore(const std::vector<torch::Tensor>& saved) {
  torch::NoGradGuard no_grad;
  flat_.copy_(saved.at(0));
  exp_avg_.copy_(saved.at(1));
  exp_avg_sq_.copy_(saved.at(2));
  step_.copy_(saved.at(3));
}

std::map<std::string, torch::Tensor> FlatAdamW::state_by_name() const {
  std::map<std::string, torch::Tensor> state;
  const int64_t steps = steps_taken();
  if (steps == 0) return state;
  for (const auto& slice : slices_) {
    state["optimizer.step." + slice.name] = torch::tensor(steps, torch::kInt64);
    state["optimizer.exp_avg." + slice.name] = view_of(exp_avg_, slice);
    state["optimizer.exp_avg_sq." + slice.name] = view_of(exp_avg_sq_, slice);
  }
  return state;
}

void FlatAdamW::load_state_by_name(const std::map<std::string, torch::Tensor>& state) {
  auto entry = [&](const std::string& key) -> const torch::Tensor& {
    const auto found = state.find(key);
    if (found == state.end()) throw std::invalid_argument(key + " is missing");
    return found->second;
  };
  // Check everything before changing anything.
  int64_t steps = -1;
  for (const auto& slice : slices_) {
    const auto& step = entry("optimizer.step." + slice.name);
    if (step.numel() != 1) throw std::invalid_argument("optimizer.step." + slice.name + " is not one number");
    const int64_t s = step.item<int64_t>();
    if (steps >= 0 && s != steps)
      throw std::invalid_argument("optimizer.step." + slice.name + " is " + std::to_string(s) + ", another parameter's " +
                                  std::to_string(steps) + ": one step count for every parameter");
    steps = s;
    for (const char* moment : {"optimizer.exp_avg.", "optimizer.exp_avg_sq."})
      if (entry(moment + slice.name).sizes().vec() != slice.shape)
        throw std::invalid_argument(moment + slice.name + ": shape does not match the parameter's");
  }
  torch::NoGradGuard no_grad;
  for (const auto& slice : slices_) {
    view_of(exp_avg_, slice).copy_(entry("optimizer.exp_avg." + slice.name));
    view_of(exp_avg_sq_, slice).copy_(entry("optimizer.exp_avg_sq." + slice.name));
  }
  step_.fill_(static_cast<double>(steps));
}

}  // namespace mixlab
