#include "harness/config.h"

#include "core/text.h"

#include "harness/json_input.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace mixlab {

namespace fs = std::filesystem;

ConfigError::ConfigError(const std::string& file_, const std::string& path_, const std::string& message)
    : std::runtime_error((file_.empty() ? std::string("config") : file_) +
                         (path_.empty() ? std::string() : ": at " + path_) + ": " + message),
      file(file_), path(path_), detail(message) {}

json parse_json_text(const std::string& text, const std::string& file) {
  try {
    return parse_json_bounded(text, /*allow_comments=*/true);
  } catch (const JsonInputError& error) {
    throw ConfigError(file, error.where, error.detail);
  }
}

json read_json_file(const std::string& file) {
  std::ifstream in(file);
  if (!in) throw ConfigError(file, "", "cannot open the file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse_json_text(buffer.str(), file);
}

std::string presets_dir() {
  if (const char* env = std::getenv("MIXLAB_PRESETS")) return env;
  if (fs::is_directory("experiments/presets")) return "experiments/presets";
  return std::string(MIXLAB_SOURCE_DIR) + "/experiments/presets";
}

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  std::error_code error;
  for (const auto& item : fs::directory_iterator(presets_dir(), error))
    if (item.path().extension() == ".json") names.push_back(item.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

json load_preset(const std::string& name, const std::string& file, const std::string& path) {
  // A preset is a name from the presets folder, never a path: an arbitrary string (too long for the file
  // system, or with a '/') must not reach the file system, only the list of valid names.
  const std::vector<std::string> valid = preset_names();
  if (std::find(valid.begin(), valid.end(), name) == valid.end())
    throw ConfigError(file, path, "unknown preset '" + name + "'; valid: " + joined(valid));
  json preset = read_json_file(presets_dir() + "/" + name + ".json");
  if (preset.contains("model")) preset = preset["model"];
  preset.erase("description");
  return preset;
}

void merge_json(json& base, const json& overrides) {
  if (!base.is_object() || !overrides.is_object()) {
    base = overrides;
    return;
  }
  for (auto it = overrides.begin(); it != overrides.end(); ++it) {
    if (base.contains(it.key()) && base[it.key()].is_object() && it.value().is_object())
      merge_json(base[it.key()], it.value());
    else
      base[it.key()] = it.value();
  }
}

namespace {
std::vector<std::string> split_path(const std::string& dotted) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(dotted);
  while (std::getline(in, part, '.')) parts.push_back(part);
  return parts;
}
bool is_index(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(c); });
}
// A list index of at most 9 digits (no list in a config comes near 10^9 elements).
size_t index_value(const std::string& part, const std::string& dotted_path) {
  if (part.size() > 9) throw ConfigError("", dotted_path, "index " + part + " is far past the end of any list");
  return std::stoul(part);
}
}  // namespace

void set_dotted(json& target, const std::string& dotted_path, const json& value) {
  json* node = &target;
  for (const auto& part : split_path(dotted_path)) {
    if (node->is_array() && is_index(part)) {
      const size_t index = index_value(part, dotted_path);
      if (index >= node->size())
        throw ConfigError("", dotted_path, "index " + part + " is past the end of a list of " +
                                               std::to_string(node->size()));
      node = &(*node)[index];
    } else {
      if (!node->is_object() && !node->is_null())
        throw ConfigError("", dotted_path, "'" + part + "' cannot be set inside a non-object value");
      node = &(*node)[part];
    }
  }
  *node = value;
}

json get_dotted(const json& target, const std::string& dotted_path) {
  const json* node = &target;
  for (const auto& part : split_path(dotted_path)) {
    if (node->is_array() && is_index(part) && part.size() <= 9 && std::stoul(part) < node->size())
      node = &(*node)[std::stoul(part)];
    else if (node->is_object() && node->contains(part))
      node = &(*node)[part];
    else
      return nullptr;
  }
  return *node;
}

void apply_dotted_set(json& target, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("--set", assignment, "expected key=value, e.g. model.d_model=512");
  const std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  if (!is_valid_utf8(assignment))
    throw ConfigError("--set", key, "is not valid UTF-8; give the value as UTF-8 text");
  json value;
  try {
    value = parse_json_bounded(text, /*allow_comments=*/false);
  } catch (const JsonInputError& error) {
    if (!error.syntax)
      throw ConfigError("--set", error.where.empty() ? key : key + (error.where[0] == '[' ? "" : ".") + error.where,
                        error.detail);
    value = text;
  }
  set_dotted(target, key, value);
}

json resolve_model_json(const json& model, const std::string& file, const std::string& path) {
  if (!model.is_object()) throw ConfigError(file, path, "must be an object (a preset name or explicit model)");
  json resolved = json::object();
  if (model.contains("preset")) {
    if (!model["preset"].is_string()) throw ConfigError(file, path + ".preset", "must be a string");
    resolved = load_preset(model["preset"].get<std::string>(), file, path + ".preset");
    resolved["name"] = model["preset"];
  }
  json overrides = model;
  overrides.erase("preset");
  // The pattern of an override replaces the preset's; mixer_params are folded in below.
  merge_json(resolved, overrides);
  if (resolved.contains("mixer_params")) {
    const json& by_mixer = resolved["mixer_params"];
    if (!by_mixer.is_object()) throw ConfigError(file, path + ".mixer_params", "must be an object {mixer: {param: value}}");
    if (!resolved.contains("pattern") || !resolved["pattern"].is_array())
      throw ConfigError(file, path + ".pattern", "is missing; mixer_params needs a pattern to apply to");
    for (auto it = by_mixer.begin(); it != by_mixer.end(); ++it) {
      if (!Registry::global().contains(it.key()))
        throw ConfigError(file, path + ".mixer_params." + it.key(),
                          "unknown mixer; valid: " + joined(Registry::global().names()));
      bool used = false;
      for (auto& sublayer : resolved["pattern"]) {
        // A string sublayer ("mlp") is the object {"mixer": "mlp"} written short.
        if (sublayer.is_string() && sublayer.get<std::string>() == it.key()) sublayer = json{{"mixer", it.key()}};
        if (sublayer.is_object() && sublayer.value("mixer", "") == it.key()) {
          merge_json(sublayer, it.value());
          used = true;
        }
      }
      if (!used)
        throw ConfigError(file, path + ".mixer_params." + it.key(), "no sublayer of the pattern uses this mixer");
    }
    resolved.erase("mixer_params");
  }
  return resolved;
}

ParamValue param_value_from_json(const json& value, const std::string& file, const std::string& path) {
  if (value.is_boolean()) return value.get<bool>();
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_number()) return value.get<double>();
  if (value.is_string()) return value.get<std::string>();
  throw ConfigError(file, path, "must be a number, boolean or string, got " + value.dump());
}

namespace {
int64_t require_int(const json& object, const std::string& key, const std::string& file,
                    const std::string& path, int64_t minimum, int64_t maximum) {
  const json& value = object.at(key);
  if (!value.is_number_integer())
    throw ConfigError(file, path + "." + key, "must be an integer, got " + value.dump());
  int64_t x = value.get<int64_t>();
  if (x < minimum || x > maximum)
    throw ConfigError(file, path + "." + key, "is " + std::to_string(x) + ", outside the valid range [" +
                                                  std::to_string(minimum) + ", " + std::to_string(maximum) + "]");
  return x;
}
}  // namespace

// model.routing: {"router": "mod"|"dllm"|"none", "capacity", "first_layer", "every", "aux_coef",
// "target", "always_first", "router_hidden"} (harness/block_router.h).
BlockRoutingConfig parse_block_routing(const json& routing, const std::string& file, const std::string& path) {
  if (!routing.is_object()) throw ConfigError(file, path, "must be an object, e.g. {\"router\": \"mod\", \"capacity\": 0.125}");
  static const std::set<std::string> known = {"router", "capacity", "first_layer", "every", "aux_coef",
                                              "target", "always_first", "router_hidden"};
  for (auto it = routing.begin(); it != routing.end(); ++it)
    if (!known.count(it.key()))
      throw ConfigError(file, path + "." + it.key(), "unknown key; valid: " + joined(std::vector<std::string>(known.begin(), known.end())));
  BlockRoutingConfig config;
  if (routing.contains("router")) {
    if (!routing["router"].is_string()) throw ConfigError(file, path + ".router", "must be a string: none, mod or dllm");
    config.router = routing["router"].get<std::string>();
    if (config.router != "none" && config.router != "mod" && config.router != "dllm")
      throw ConfigError(file, path + ".router", "unknown router '" + config.router + "'; valid: dllm, mod, none");
  }
  auto real = [&](const char* key, double& out, double lo, double hi) {
    if (!routing.contains(key)) return;
    if (!routing[key].is_number() || !(routing[key].get<double>() >= lo && routing[key].get<double>() <= hi))
      throw ConfigError(file, path + "." + key, "must be a number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    out = routing[key].get<double>();
  };
  real("capacity", config.capacity, 1e-6, 1.0);
  real("aux_coef", config.aux_coef, 0.0, 1e6);
  real("target", config.target, 0.0, 1.0);
  if (routing.contains("first_layer")) config.first_layer = require_int(routing, "first_layer", file, path, 0, 4096);
  if (routing.contains("every")) config.every = require_int(routing, "every", file, path, 1, 4096);
  if (routing.contains("always_first")) config.always_first = require_int(routing, "always_first", file, path, 0, 1 << 30);
  if (routing.contains("router_hidden")) config.router_hidden = require_int(routing, "router_hidden", file, path, 0, 1 << 16);
  return config;
}

ModelConfig parse_model_config(const json& model_in, const std::string& file, const std::string& path) {
  const json model = resolve_model_json(model_in, file, path);
  static const std::set<std::string> known = {"name", "vocab_size", "d_model", "n_heads", "n_layers",
                                              "pattern", "tie_embeddings", "norm_eps", "init_std",
                                              "embedding_dropout", "embedding", "embedding_params", "layer_averaging", "routing", "init_from"};
  for (auto it = model.begin(); it != model.end(); ++it)
    if (!known.count(it.key()))
      throw ConfigError(file, path + "." + it.key(),
                        "unknown key; valid: preset, mixer_params, " +
                            joined(std::vector<std::string>(known.begin(), known.end())));
  ModelConfig config;
  if (model.contains("name")) {
    if (!model["name"].is_string()) throw ConfigError(file, path + ".name", "must be a string, got " + model["name"].dump());
    config.name = model["name"].get<std::string>();
  }
  if (model.contains("vocab_size")) config.vocab_size = require_int(model, "vocab_size", file, path, 2, 1 << 24);
  if (model.contains("d_model")) config.d_model = require_int(model, "d_model", file, path, 1, 1 << 16);
  if (model.contains("n_heads")) config.n_heads = require_int(model, "n_heads", file, path, 1, 1024);
  if (model.contains("n_layers")) config.n_layers = require_int(model, "n_layers", file, path, 1, 4096);
  auto real = [&](const char* key, double& out, double lo, double hi) {
    if (!model.contains(key)) return;
    if (!model[key].is_number()) throw ConfigError(file, path + "." + key, "must be a number");
    out = model[key].get<double>();
    if (!(out >= lo && out <= hi))
      throw ConfigError(file, path + "." + key, "is outside the valid range [" + std::to_string(lo) + ", " +
                                                    std::to_string(hi) + "]");
  };
  real("norm_eps", config.norm_eps, 0.0, 1.0);
  real("init_std", config.init_std, 0.0, 10.0);
  real("embedding_dropout", config.embedding_dropout, 0.0, 1.0);
  if (config.embedding_dropout >= 1.0)
    throw ConfigError(file, path + ".embedding_dropout", "is 1, which drops every embedding; valid: [0, 1)");
  if (model.contains("tie_embeddings")) {
    if (!model["tie_embeddings"].is_boolean()) throw ConfigError(file, path + ".tie_embeddings", "must be true or false");
    config.tie_embeddings = model["tie_embeddings"].get<bool>();
  }
  if (model.contains("embedding")) {
    if (!model["embedding"].is_string()) throw ConfigError(file, path + ".embedding", "must be a string");
    config.embedding = model["embedding"].get<std::string>();
    if (config.embedding != "standard" && config.embedding != "scone")
      throw ConfigError(file, path + ".embedding", "unknown embedding '" + config.embedding + "'; valid: scone, standard");
  }
  if (model.contains("init_from")) {
    if (!model["init_from"].is_string()) throw ConfigError(file, path + ".init_from", "must be the path of a model file");
    // Loaded after the model is built (load_initial_weights, harness/model_file.h).
  }
  if (model.contains("embedding_params")) {
    const json& params = model["embedding_params"];
    if (!params.is_object()) throw ConfigError(file, path + ".embedding_params", "must be an object {name: value}");
    for (auto it = params.begin(); it != params.end(); ++it)
      config.embedding_params[it.key()] =
          param_value_from_json(it.value(), file, path + ".embedding_params." + it.key());
  }
  if (model.contains("layer_averaging")) {
    if (!model["layer_averaging"].is_boolean()) throw ConfigError(file, path + ".layer_averaging", "must be true or false");
    config.layer_averaging = model["layer_averaging"].get<bool>();
  }
  if (model.contains("routing")) config.routing = parse_block_routing(model["routing"], file, path + ".routing");
  if (!model.contains("pattern") || !model["pattern"].is_array() || model["pattern"].empty())
    throw ConfigError(file, path + ".pattern", "must be a non-empty list of sublayers, e.g. "
                                               "[{\"mixer\": \"attention\"}, {\"mixer\": \"mlp\"}]");
  if (config.d_model % config.n_heads != 0)
    throw ConfigError(file, path + ".n_heads", "d_model (" + std::to_string(config.d_model) +
                                                   ") must be divisible by n_heads (" +
                                                   std::to_string(config.n_heads) + ")");
  const json& pattern = model["pattern"];
  for (size_t i = 0; i < pattern.size(); ++i) {
    const std::string where = path + ".pattern[" + std::to_string(i) + "]";
    const json& item = pattern[i];
    SublayerConfig sublayer;
    if (item.is_string()) {
      sublayer.mixer = item.get<std::string>();
    } else if (item.is_object() && item.contains("mixer") && item["mixer"].is_string()) {
      sublayer.mixer = item["mixer"].get<std::string>();
      for (auto it = item.begin(); it != item.end(); ++it)
        if (it.key() != "mixer")
          sublayer.params[it.key()] = param_value_from_json(it.value(), file, where + "." + it.key());
    } else {
      throw ConfigError(file, where, "must be a mixer name or {\"mixer\": NAME, param: value, ...}");
    }
    if (!Registry::global().contains(sublayer.mixer))
      throw ConfigError(file, where + ".mixer", "unknown mixer '" + sublayer.mixer + "'; valid: " +
                                                    joined(Registry::global().names()));
    try {
      MixerParams params = Registry::global().resolve(sublayer.mixer, sublayer.params);
      const MixerEntry& entry = Registry::global().at(sublayer.mixer);
      if (entry.validate)
        entry.validate(MixerContext{config.d_model, config.n_heads, 0, config.n_layers, config.init_std}, params);
    } catch (const RegistryError& error) {
      throw ConfigError(file, where, error.what());
    }
    config.pattern.push_back(std::move(sublayer));
  }
  return config;
}

std::string model_label(const json& resolved_model) {
  std::string label = resolved_model.value("name", std::string("custom"));
  // A model without a preset name is called after its token mixers ("fft_conv", "swa+mamba").
  if (label == "custom" && resolved_model.contains("pattern")) {
    std::vector<std::string> mixers;
    for (const auto& sublayer : resolved_model["pattern"]) {
      const std::string mixer = sublayer.is_string() ? sublayer.get<std::string>() : sublayer.value("mixer", "");
      if (mixer.empty() || mixer == "mlp" || std::find(mixers.begin(), mixers.end(), mixer) != mixers.end()) continue;
      mixers.push_back(mixer);
    }
    if (!mixers.empty()) {
      label.clear();
      for (size_t i = 0; i < mixers.size(); ++i) label += (i ? "+" : "") + mixers[i];
    }
  }
  // Name the parameters that make configurations differ most often; the options that turn an
  // entry into another seed system (docs/seed-systems.md) only when they leave their default.
  static const std::vector<std::pair<std::string, std::string>> shown = {
      {"segment_size", "S"}, {"window", "W"}, {"d_state", "n"}, {"top_k", "k"}};
  static const std::vector<std::pair<std::string, std::string>> shown_unless_default = {
      {"summary", "summary"}, {"num_filters", "K"}};
  auto text = [](const json& value) { return value.is_string() ? value.get<std::string>() : value.dump(); };
  auto is_default = [&](const json& sublayer, const std::string& key) {
    const std::string mixer = sublayer.value("mixer", "");
    if (!Registry::global().contains(mixer)) return false;
    for (const auto& param : Registry::global().at(mixer).params)
      if (param.name == key) return format_param_value(param.default_value) == text(sublayer[key]);
    return false;
  };
  std::set<std::string> seen;
  if (resolved_model.contains("pattern"))
    for (const auto& sublayer : resolved_model["pattern"]) {
      if (!sublayer.is_object()) continue;
      for (const auto& [key, short_name] : shown)
        if (sublayer.contains(key) && !seen.count(key)) {
          seen.insert(key);
          label += " " + short_name + "=" + text(sublayer[key]);
        }
      for (const auto& [key, short_name] : shown_unless_default)
        if (sublayer.contains(key) && !seen.count(key) && !is_default(sublayer, key)) {
          seen.insert(key);
          label += " " + short_name + "=" + text(sublayer[key]);
        }
      // Options that change the rule (mamba2's EfficientViM hidden-state mixer) name themselves.
      if (sublayer.contains("hidden_mixer") && sublayer["hidden_mixer"].is_string() &&
          sublayer["hidden_mixer"].get<std::string>() != "none" && !seen.count("hidden_mixer")) {
        seen.insert("hidden_mixer");
        label += " +" + sublayer["hidden_mixer"].get<std::string>();
      }
    }
  // Model options (harness/layer_averaging.h, harness/block_router.h).
  if (resolved_model.value("layer_averaging", false)) label += " +layer-avg";
  if (resolved_model.contains("routing") && resolved_model["routing"].is_object() &&
      resolved_model["routing"].value("router", std::string("none")) != "none")
    label += " +" + resolved_model["routing"]["router"].get<std::string>();
  return label;
}

}  // namespace mixlab
