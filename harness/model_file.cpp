#include "harness/model_file.h"

#include "core/text.h"
#include "harness/device.h"
#include "harness/hf_layout.h"

#include <filesystem>
#include <fstream>

namespace mixlab {
namespace fs = std::filesystem;
namespace {

// A checkpoint's non-weight entries (harness/checkpoint.h) are not part of the model.
bool is_training_state(const std::string& name) { return starts_with(name, "optimizer.") || starts_with(name, "rng."); }

void write_text_atomically(const fs::path& path, const std::string& text) {
  const fs::path temporary = path.string() + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw std::runtime_error("cannot write " + temporary.string());
  }
  fs::rename(temporary, path);
}

}  // namespace

std::string model_weights_file(const std::string& path) {
  if (fs::is_regular_file(path)) return path;
  if (fs::is_directory(path)) {
    for (const char* name : {"model.safetensors", "checkpoint.safetensors"})
      if (fs::is_regular_file(fs::path(path) / name)) return (fs::path(path) / name).string();
    // A run root holding exactly one run folder stands for that run.
    std::vector<std::string> runs;
    for (const auto& entry : fs::directory_iterator(path))
      if (fs::is_regular_file(entry.path() / "checkpoint.safetensors")) runs.push_back(entry.path().filename().string());
    if (runs.size() == 1) return (fs::path(path) / runs.front() / "checkpoint.safetensors").string();
    std::string listed;
    for (size_t i = 0; i < runs.size() && i < 8; ++i) listed += (i ? ", " : "") + runs[i];
    throw ConfigError(path, "", runs.empty() ? "holds neither model.safetensors nor checkpoint.safetensors nor a run folder"
                                             : "holds " + std::to_string(runs.size()) + " run folders; name one: " + listed);
  }
  throw ConfigError(path, "", "no such file or folder (give a model.safetensors, its folder or a run folder)");
}

json model_json_of(const std::string& path) {
  const std::string file = model_weights_file(path);
  const Metadata metadata = read_safetensors_metadata(file);
  if (metadata.count("mixlab_model")) return parse_json_text(metadata.at("mixlab_model"), file + " (mixlab_model)");
  const fs::path config_file = fs::path(file).parent_path() / "config.json";
  if (!fs::is_regular_file(config_file))
    throw ConfigError(file, "", "names no model (no mixlab_model metadata, no config.json beside it); give the "
                                "model with --preset or --config");
  const json config = read_json_file(config_file.string());
  if (config.contains("mixlab_model")) return config["mixlab_model"];
  return model_json_from_hf_config(config, config_file.string());
}

TensorMap read_model_weights(const std::string& path, const ModelConfig& config) {
  const std::string file = model_weights_file(path);
  TensorMap tensors = read_safetensors(file);
  for (auto it = tensors.begin(); it != tensors.end();) it = is_training_state(it->first) ? tensors.erase(it) : std::next(it);
  return from_hf_weights(tensors, config, file);
}

LoadReport load_model_file(LanguageModelImpl& model, const std::string& path) {
  return load_module_tensors(model, read_model_weights(path, model.config()), model_weights_file(path));
}

void load_initial_weights(LanguageModelImpl& model, const json& model_json) {
  if (model_json.contains("init_from")) load_model_file(model, model_json["init_from"].get<std::string>());
}

std::string export_model(const LanguageModelImpl& model, const json& model_json, const std::string& dir,
                         const ExportOptions& options) {
  if (options.names != "mixlab" && options.names != "hf")
    throw ConfigError("--names", "", "'" + options.names + "' is not a naming; valid: mixlab, hf");
  const torch::ScalarType dtype = scalar_type_of(options.dtype);
  TensorMap weights;
  for (const auto& [name, tensor] : module_weights(model)) weights[name] = tensor.detach().to(torch::kCPU, dtype);
  std::string architecture;
  json config = {{"mixlab_model", model_json}, {"weight_names", "mixlab"}};
  if (options.names == "hf") {
    architecture = hf_architecture(model.config(), options.hf_arch);
    config = hf_config_json(model.config(), weights, architecture);
    config["torch_dtype"] = options.dtype;
    config["mixlab_model"] = model_json;
    config["weight_names"] = architecture;
    weights = to_hf_weights(weights, model.config(), architecture);
  }
  fs::create_directories(dir);
  write_safetensors((fs::path(dir) / "model.safetensors").string(), weights,
                    {{"format", "pt"}, {"mixlab_model", model_json.dump()}, {"weight_names", config["weight_names"].get<std::string>()}});
  write_text_atomically(fs::path(dir) / "config.json", config.dump(2) + "\n");
  return architecture;
}

}  // namespace mixlab
