#include "harness/checkpoint.h"

#include "harness/safetensors.h"
#include "core/compat.h"

#include <ATen/CPUGeneratorImpl.h>

#include <filesystem>

namespace mixlab {
namespace {

const char* kFormat = "mixlab-checkpoint";

using AdamWState = torch::optim::AdamWParamState;

}  // namespace

void save_training_checkpoint(const std::string& path, const torch::nn::Module& model,
                              torch::optim::AdamW& optimizer, const CheckpointState& state, const json& model_json) {
  TensorMap tensors = module_weights(model);
  auto& states = optimizer.state();
  for (const auto& item : model.named_parameters()) {
    auto found = states.find(compat::optimizer_state_key(states, item.value()));
    if (found == states.end()) continue;  // no step taken for this parameter yet
    const auto& adam = static_cast<const AdamWState&>(*found->second);
    tensors["optimizer.step." + item.key()] = torch::tensor(static_cast<int64_t>(adam.step()), torch::kInt64);
    tensors["optimizer.exp_avg." + item.key()] = adam.exp_avg();
    tensors["optimizer.exp_avg_sq." + item.key()] = adam.exp_avg_sq();
  }
  tensors["rng.cpu"] = at::detail::getDefaultCPUGenerator().get_state();
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  write_safetensors(path, tensors,
                    {{"format", kFormat},
                     {"step", std::to_string(state.step)},
                     {"elapsed_s", std::to_string(state.elapsed_s)},
                     {"fingerprint", state.fingerprint},
                     {"mixlab_model", model_json.dump()}});
}

std::optional<CheckpointState> read_checkpoint_state(const std::string& path) {
  if (!std::filesystem::exists(path)) return std::nullopt;
  const Metadata metadata = read_safetensors_metadata(path);
  auto field = [&](const std::string& key) {
    auto found = metadata.find(key);
    if (found == metadata.end()) throw SafetensorsError(path, "__metadata__." + key, "is missing: not a mixlab checkpoint");
    return found->second;
  };
  if (field("format") != kFormat)
    throw SafetensorsError(path, "__metadata__.format", "is '" + field("format") + "', not " + kFormat);
  CheckpointState state;
  try {
    state.step = std::stoll(field("step"));
    state.elapsed_s = std::stod(field("elapsed_s"));
  } catch (const std::logic_error&) {
    throw SafetensorsError(path, "__metadata__", "step or elapsed_s is not a number");
  }
  state.fingerprint = field("fingerprint");
  return state;
}

CheckpointState load_training_checkpoint(const std::string& path, torch::nn::Module& model,
                                         torch::optim::AdamW& optimizer) {
  const CheckpointState state = *read_checkpoint_state(path);
  TensorMap tensors = read_safetensors(path);
  TensorMap weights, training;
  for (auto& [name, tensor] : tensors)
    (name.rfind("optimizer.", 0) == 0 || name.rfind("rng.", 0) == 0 ? training : weights)[name] = tensor;
  // Check the optimizer entries against the parameters before changing anything.
  const auto parameters = model.named_parameters();
  for (const auto& [name, tensor] : training) {
    if (name == "rng.cpu") continue;
    const auto dot = name.find('.', std::string("optimizer.").size());
    const std::string parameter = name.substr(dot + 1);
    const auto* target = parameters.find(parameter);
    if (!target) throw SafetensorsError(path, name, "names no parameter of the model");
    if (name.rfind("optimizer.step.", 0) != 0 && tensor.sizes() != target->sizes())
      throw SafetensorsError(path, name, "shape does not match the parameter's");
  }
  if (!training.count("rng.cpu")) throw SafetensorsError(path, "rng.cpu", "is missing");
  load_module_tensors(model, weights, path);

  auto& states = optimizer.state();
  torch::NoGradGuard no_grad;
  for (const auto& item : parameters) {
    const std::string& name = item.key();
    if (!training.count("optimizer.exp_avg." + name)) continue;
    const auto& parameter = item.value();
    auto adam = std::make_unique<AdamWState>();
    adam->step(training.at("optimizer.step." + name).item<int64_t>());
    adam->exp_avg(training.at("optimizer.exp_avg." + name).to(parameter.options()).clone());
    adam->exp_avg_sq(training.at("optimizer.exp_avg_sq." + name).to(parameter.options()).clone());
    states[compat::optimizer_state_key(states, parameter)] = std::move(adam);
  }
  at::Generator generator = at::detail::getDefaultCPUGenerator();  // a handle to the shared generator
  generator.set_state(training.at("rng.cpu"));
  return state;
}

}  // namespace mixlab
