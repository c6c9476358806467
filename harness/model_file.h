#pragma once
// A model on disk (docs/weights.md, "Model files"): a folder holding
//
//   model.safetensors   the weights, in mixlab's names or a Hugging Face layout (harness/hf_layout.h);
//                       metadata: format "pt", mixlab_model (the explicit model JSON), weight_names
//   config.json         the HF config of the architecture (--names hf) or {"mixlab_model": ...};
//                       both carry "mixlab_model", so mixlab rebuilds the exact model
//
// or a training checkpoint (checkpoint.safetensors, harness/checkpoint.h), whose weights are read
// the same way.  A folder from elsewhere (a transformers save_pretrained of Qwen2, Llama or Mamba)
// loads too: its config.json is translated by model_json_from_hf_config.

#include "harness/config.h"
#include "harness/safetensors.h"

#include <string>

namespace mixlab {

// The weights file a path names: PATH itself when it is a file, else PATH/model.safetensors or
// PATH/checkpoint.safetensors (a run folder), else the checkpoint of PATH's only run folder (a
// run root with one run).  ConfigError when there is none, or several runs to choose from.
std::string model_weights_file(const std::string& path);

// The explicit mixlab model object of a model file or folder: the weights file's
// "mixlab_model" metadata, else config.json beside it (its "mixlab_model", else the HF fields).
json model_json_of(const std::string& path);

// The model's weights in a file, renamed to mixlab's names (HF layouts translated; a
// checkpoint's optimizer and RNG entries left out).
TensorMap read_model_weights(const std::string& path, const ModelConfig& config);

// Copy a model file's weights (either layout) into `model`; strict by name and shape.
LoadReport load_model_file(LanguageModelImpl& model, const std::string& path);

// A model object's "init_from" (--init-from on train and bench): when present, the model just
// built from that object takes the file's weights instead of its initial ones.
void load_initial_weights(LanguageModelImpl& model, const json& model_json);

struct ExportOptions {
  std::string names = "mixlab";   // "mixlab" or "hf"
  std::string hf_arch = "qwen2";  // "qwen2" or "llama" for attention stacks (Mamba stacks: mamba)
  std::string dtype = "float32";  // float32, bfloat16, float16 or float64
};

// Writes DIR/model.safetensors and DIR/config.json (each to .tmp, then renamed) and returns the
// HF architecture written ("" for mixlab names).
std::string export_model(const LanguageModelImpl& model, const json& model_json, const std::string& dir,
                         const ExportOptions& options);

}  // namespace mixlab
