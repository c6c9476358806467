#include "harness/checkpoint.h"

#include "harness/safetensors.h"

#include <ATen/CPUGeneratorImpl.h>

#include <filesystem>

namespace mixlab {
namespace {

const char* kFormat = "mixlab-checkpoint";

}  // namespace

void save_training_checkpoint(const std::string& path, const torch::nn::Module& model,
                              const FlatAdamW& optimizer, const CheckpointState& state, const json& model_json) {
  TensorMap tensors = module_weights(model);
  for (const auto& [name, tensor] : optimizer.state_by_name()) tensors[name] = tensor;  // none before a step
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
                                         FlatAdamW& optimizer) {
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

  std::map<std::string, torch::Tensor> moments;
  for (const auto& [name, tensor] : training)
    if (name.rfind("optimizer.", 0) == 0) moments[name] = tensor;
  if (!moments.empty()) {
    try {
      optimizer.load_state_by_name(moments);
    } catch (const std::invalid_argument& error) {
      throw SafetensorsError(path, "optimizer", error.what());
    }
  }
  at::Generator generator = at::detail::getDefaultCPUGenerator();  // a handle to the shared generator
  generator.set_state(training.at("rng.cpu"));
  return state;
}

}  // namespace mixlab
