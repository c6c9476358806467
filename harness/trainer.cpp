#include "harness/trainer.h"

#include "core/compat.h"
#include "core/implementation.h"
#include "harness/cuda_graph.h"
#include "harness/distributed.h"
#include "harness/graphed_train_step.h"
#include "harness/linear_cross_entropy.h"
#include "harness/training_data.h"

namespace mixlab {

// The head runs only where a target is asked: the mean over those positions equals cross entropy
// with ignore_index over every position, and a synthetic task asks few (MQAR: K of L), so the
// [B·L, vocab] logits, which dominate the step for small models, shrink to [answers, vocab]; and
// even those are made a chunk of rows at a time.
torch::Tensor language_model_loss(LanguageModel& model, const LossInputs& batch) {
  auto hidden = model->hidden_states(batch.inputs);                          // [B, L, d]
  auto flat = hidden.reshape({-1, hidden.size(-1)});                         // [B·L, d]
  if (batch.rows.defined()) flat = flat.index_select(0, batch.rows);         // [M, d]
  // cross_entropy(flat · Wᵀ, targets) without the [M, V] logits (harness/linear_cross_entropy.h)
  auto loss = linear_cross_entropy(flat, model->head_weight(), batch.targets);
  auto auxiliary = model->auxiliary_loss();
  return loss + auxiliary.to(torch::kFloat32);
}

torch::Tensor language_model_loss(LanguageModel& model, const data::Batch& batch) {
  return language_model_loss(model, loss_inputs(batch).to(model->parameters().front().device()));
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
  // scalars do not.  A frozen parameter (requires_grad false) is not the optimiser's.
  std::vector<std::pair<std::string, torch::Tensor>> parameters;
  for (const auto& item : model_->named_parameters())
    if (item.value().requires_grad()) parameters.emplace_back(item.key(), item.value());
  optimizer_ = std::make_unique<FlatAdamW>(
      parameters, AdamWSettings{config.beta1, config.beta2, config.eps, config.weight_decay});
  if (config.execution == "eager") return;
  // auto: graphs where they can run; on the CPU the step is eager without a word.  cuda_graph
  // asked for graphs, so the CPU is a reason worth stating.
  if (!device_.is_cuda()) {
    if (config.execution == "cuda_graph") why_not_graphed_ = "the device is the CPU";
  } else if (!cuda_graphs_compiled())
    why_not_graphed_ = "this build has no CUDA support";
  else
    graphs_ = std::make_unique<GraphedTrainStep>(
        [this](const std::vector<LossInputs>& micro) { return queue_step(micro); }, *optimizer_, device_);
}

Trainer::~Trainer() = default;

void Trainer::synchronise_gradients(distributed::GradientReducer* reducer) {
  reducer_ = reducer;
  if (reducer_ && graphs_) {
    graphs_.reset();
    why_not_graphed_ = "data-parallel training: the gradient all-reduce is not captured";
  }
}

torch::Tensor Trainer::queue_step(const std::vector<LossInputs>& micro_batches) {
  ImplementationLog implementations;
  optimizer_->zero_grad();
  torch::Tensor total = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device_));
  for (size_t m = 0; m < micro_batches.size(); ++m) {
    torch::Tensor loss;
    {
      compat::CudaAutocast autocast(autocast_);
      loss = language_model_loss(model_, micro_batches[m]) / static_cast<double>(micro_batches.size());
    }
    if (reducer_) reducer_->prepare(/*last_micro_batch=*/m + 1 == micro_batches.size());
    loss.backward();
    total += loss.detach().to(torch::kFloat64);
  }
  if (reducer_) reducer_->finish();
  if (config_.grad_clip > 0) clip_gradient_norm({optimizer_->gradient()}, config_.grad_clip);
  optimizer_->step();
  implementation_ = implementations.summary();
  return total;
}

double Trainer::step(const std::vector<data::Batch>& micro_batches, int64_t step) {
  return queue(micro_batches, step).value();
}

PendingLoss Trainer::queue(const std::vector<data::Batch>& micro_batches, int64_t step) {
  model_->train();
  optimizer_->set_learning_rate(learning_rate(config_, step, total_steps_));
  std::vector<LossInputs> inputs;  // the rows with a target found on the host, where the batches are
  for (const auto& micro : micro_batches) inputs.push_back(loss_inputs(micro));
  torch::Tensor loss;
  if (graphs_) {
    loss = graphs_->replay(inputs);
    why_not_graphed_ = graphs_->why_not();
  }
  execution_ = loss.defined() ? "cuda_graph" : "eager";
  if (!loss.defined()) {
    for (auto& micro : inputs) micro = micro.to(device_);
    loss = queue_step(inputs);
  }
  // Copied to the host behind the step; whoever reads it waits for this step, not for later ones.
  return PendingLoss(loss);
}

void clip_gradient_norm(const std::vector<torch::Tensor>& gradients, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads, norms;
  for (const auto& g : gradients)
    if (g.defined()) {
      grads.push_back(g);
      norms.push_back(g.norm(2).to(torch::kFloat32));
    }
  if (grads.empty()) return;
  const torch::Tensor total = torch::stack(norms).norm(2);  // ‖g‖₂ over every parameter
  const torch::Tensor scale = (max_norm / (total + 1e-6)).clamp_max(1.0);
  for (auto& g : grads) g.mul_(scale.to(g.scalar_type()));
}

}  // namespace mixlab
