#pragma once
// Reading configs: JSON with comments, model presets, dotted-path overrides, and errors that say
// which file, which JSON path and what is valid.

#include "harness/model.h"

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>

namespace mixlab {

using json = nlohmann::json;

// A configuration error: "FILE: at PATH: MESSAGE".  The CLI exits with status 2 on it.
class ConfigError : public std::runtime_error {
 public:
  ConfigError(const std::string& file, const std::string& path, const std::string& message);
  std::string file, path, detail;
};

// Parse a JSON file; // and /* */ comments are allowed.
json read_json_file(const std::string& file);
json parse_json_text(const std::string& text, const std::string& file);

// The folder holding experiments/presets/*.json: $MIXLAB_PRESETS, else ./experiments/presets,
// else the source tree's.
std::string presets_dir();
std::vector<std::string> preset_names();
json load_preset(const std::string& name, const std::string& file, const std::string& path);

// Recursively merge `overrides` into `base` (objects merge key by key; anything else replaces).
void merge_json(json& base, const json& overrides);

// Set `target[a][b][c] = value` for "a.b.c=value"; the value is parsed as JSON when it is valid
// JSON (numbers, true/false, lists) and taken as a string otherwise.  Array indices are numbers.
void apply_dotted_set(json& target, const std::string& assignment);
void set_dotted(json& target, const std::string& dotted_path, const json& value);
json get_dotted(const json& target, const std::string& dotted_path);  // null when absent

// A model object as written in a spec: {"preset": NAME, ...overrides} or fully explicit.
// Returns the explicit model object (preset merged, "mixer_params" folded into the pattern).
json resolve_model_json(const json& model, const std::string& file, const std::string& path = "model");

// Strictly validate and convert an explicit model object: unknown keys, unknown mixers and
// parameters, wrong types and out-of-range values raise ConfigError naming the JSON path.
ModelConfig parse_model_config(const json& model, const std::string& file,
                               const std::string& path = "model");

// Registry parameter value from JSON, checked against the entry's schema.
ParamValue param_value_from_json(const json& value, const std::string& file, const std::string& path);

// A short human label for a model: "scout-swa S=64", "swa W=128", from the preset name and the
// parameters that differ from the preset/defaults.
std::string model_label(const json& resolved_model);

}  // namespace mixlab
