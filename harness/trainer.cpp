#include "harness/trainer.h"

#include "core/compat.h"
#include "core/implementation.h"
#include "harness/distributed.h"
#include "harness/training_data.h"

namespace mixlab {

// The head runs only where a target is asked: the mean over those positions equals cross entropy
// with ignore_index over every position, and a synthetic task asks few (MQAR: K of L), so the
// [B·L, vocab] logits, which dominate the step for small models, shrink to [answers, vocab].
torch::Tensor language_model_loss(LanguageModel& model, const data::Batch& batch) {
  auto hidden = model->hidden_states(batch.inputs);              // [B, L, d]
  auto flat = hidden.reshape({-1, hidden.size(-1)});             // [B·L, d]
  auto targets = batch.targets.reshape({-1}).to(flat.device());  // [B·L]
  const auto asked = targets.ne(data::kIgnore);
  if (asked.sum().item<int64_t>() < targets.numel()) {
    const auto rows = asked.nonzero().squeeze(1);                // [M]
    flat = flat.index_select(0, rows);                            // [M, d]
    targets = targets.index_select(0, rows);                      // [M]
  }
  auto logits = model->logits(flat);                             // [M, V]
  auto loss = torch::nn::functional::cross_entropy(
      logits.to(torch::kFloat32), targets,
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(data::kIgnore));
  auto auxiliary = model->auxiliary_loss();
  return loss + auxiliary.to(loss.device(), torch::kFloat32);
}

namespace {
bool use_autocast(const TrainConfig& config, const torch::Device& device) {
  if (config.precision == "bfloat16" && !device.is_cuda())
    throw std::runtime_error("train.precision 'bfloat16' needs a CUDA device (the CPU trains in float32)");
  return device.is_cuda() && config.precision != "float32";
}
}  // namespace

Trainer::Trainer(LanguageModel model, const TrainConfig& config, torch::Device device, int64_t total_steps)
    : model_(std::move(model)), config_(config), device_(device), total_steps_(total_steps),
      autocast_(use_autocast(config, device)) {
  model_->to(device_);
  // Weight decay on matrices only: embeddings and projections decay; norms' gains, biases and
  // scalars do not.
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& parameter : model_->parameters()) (parameter.dim() >= 2 ? decay : no_decay).push_back(parameter);
  auto options = [&](double weight_decay) {
    return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(config.lr)
                                                            .betas({config.beta1, config.beta2})
                                                            .eps(config.eps)
                                                            .weight_decay(weight_decay));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, options(config.weight_decay));
  groups.emplace_back(no_decay, options(0.0));
  optimizer_ = std::make_unique<torch::optim::AdamW>(groups, *options(config.weight_decay));
}

double Trainer::step(const std::vector<data::Batch>& micro_batches, int64_t step) {
  model_->train();
  optimizer_->zero_grad();
  const double lr = learning_rate(config_, step, total_steps_);
  for (auto& group : optimizer_->param_groups())
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  // The loss is read once, after the optimiser step is queued: a read per micro-batch would
  // stop the host until that backward pass ends, leaving the GPU idle while the next kernels
  // are launched.
  torch::Tensor total = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device_));
  ImplementationLog implementations;
  for (const auto& micro : micro_batches) {
    torch::Tensor loss;
    {
      compat::CudaAutocast autocast(autocast_);
      loss = language_model_loss(model_, to_device(micro, device_)) / static_cast<double>(micro_batches.size());
    }
    if (reducer_) reducer_->prepare(/*last_micro_batch=*/&micro == &micro_batches.back());
    loss.backward();
    total += loss.detach().to(torch::kFloat64);
  }
  if (reducer_) reducer_->finish();
  if (config_.grad_clip > 0) clip_gradient_norm(model_->parameters(), config_.grad_clip);
  optimizer_->step();
  implementation_ = implementations.summary();
  return total.item<double>();
}

void clip_gradient_norm(const std::vector<torch::Tensor>& parameters, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads, norms;
  for (const auto& p : parameters)
    if (p.grad().defined()) {
      grads.push_back(p.grad());
      norms.push_back(p.grad().norm(2).to(torch::kFloat32));
    }
  if (grads.empty()) return;
  const torch::Tensor total = torch::stack(norms).norm(2);  // ‖g‖₂ over every parameter
  const torch::Tensor scale = (max_norm / (total + 1e-6)).clamp_max(1.0);
  for (auto& g : grads) g.mul_(scale.to(g.scalar_type()));
}

}  // namespace mixlab
