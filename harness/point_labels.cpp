#include "harness/point_labels.h"

#include "harness/config.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

namespace mixlab {

using json = nlohmann::json;

namespace {

// Every leaf of a config as (path, value): objects are walked, lists of objects ("pattern") are
// indexed ("model.pattern[1].expand"), lists of scalars ("seq_lens") are one value.
void flatten(const json& value, const std::string& path, std::map<std::string, json>& leaves) {
  if (value.is_object()) {
    for (auto it = value.begin(); it != value.end(); ++it)
      flatten(it.value(), path.empty() ? it.key() : path + "." + it.key(), leaves);
  } else if (value.is_array() && !value.empty() && value.front().is_object()) {
    for (size_t i = 0; i < value.size(); ++i) flatten(value[i], path + "[" + std::to_string(i) + "]", leaves);
  } else {
    leaves[path] = value;
  }
}

// Numbers as %g (2e+14, not 200000000000000), strings bare, absent as "-".
std::string value_text(const json& value) {
  if (value.is_null()) return "-";
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number()) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", value.get<double>());
    return text;
  }
  return value.dump();
}

// Paths whose value is not the same in every one of `configs` (absent counts as a value).
std::vector<std::string> varying_paths(const std::vector<std::map<std::string, json>>& configs) {
  std::set<std::string> paths;
  for (const auto& leaves : configs)
    for (const auto& [path, value] : leaves) paths.insert(path);
  std::vector<std::string> varying;
  for (const auto& path : paths) {
    auto value_of = [&](const std::map<std::string, json>& leaves) {
      const auto found = leaves.find(path);
      return found == leaves.end() ? json() : found->second;
    };
    const json first = value_of(configs.front());
    for (const auto& leaves : configs)
      if (value_of(leaves) != first) {
        varying.push_back(path);
        break;
      }
  }
  return varying;
}

// Model settings first, then training, then measurement; within each, the order of the paths.
int section_rank(const std::string& path) {
  if (path.rfind("model.", 0) == 0) return 0;
  if (path.rfind("train.", 0) == 0) return 1;
  return 2;
}

// " name=value" for each path, written once even when several sublayers share it.
std::string settings_text(const std::vector<std::string>& paths, const json& config,
                          const std::map<std::string, json>& leaves) {
  std::vector<std::string> ordered = paths;
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const std::string& a, const std::string& b) { return section_rank(a) < section_rank(b); });
  std::string text;
  std::set<std::string> written;
  for (const auto& path : ordered) {
    const auto found = leaves.find(path);
    const std::string item = label_name(path, config) + "=" + value_text(found == leaves.end() ? json() : found->second);
    if (written.insert(item).second) text += " " + item;
  }
  return text;
}

}  // namespace

std::string label_name(const std::string& path, const json& config) {
  static const std::map<std::string, std::string> model_names = {
      {"model.d_model", "d"}, {"model.n_layers", "L"}, {"model.n_heads", "heads"}, {"model.vocab_size", "V"}};
  if (const auto found = model_names.find(path); found != model_names.end()) return found->second;
  const std::string pattern = "model.pattern[";
  if (path.rfind(pattern, 0) == 0) {
    const auto close = path.find(']');
    const size_t index = std::stoul(path.substr(pattern.size(), close - pattern.size()));
    const std::string param = close + 2 <= path.size() ? path.substr(close + 2) : "";
    const json& sublayers = config["model"]["pattern"];
    const std::string mixer = index < sublayers.size() && sublayers[index].is_object()
                                  ? sublayers[index].value("mixer", "layer")
                                  : "layer";
    return param == "mixer" ? "layer" + std::to_string(index) : mixer + "." + param;
  }
  for (const char* prefix : {"model.", "train.", "measure."})
    if (path.rfind(prefix, 0) == 0) return path.substr(std::string(prefix).size());
  return path;
}

std::string preset_override_text(const json& preset_model, const json& resolved_model) {
  const json preset_config = {{"model", preset_model}}, model_config = {{"model", resolved_model}};
  std::map<std::string, json> preset_leaves, model_leaves;
  flatten(preset_config, "", preset_leaves);
  flatten(model_config, "", model_leaves);
  static const std::set<std::string> shown_by_model_label = {"segment_size", "window", "d_state", "top_k"};
  std::vector<std::string> changed;
  for (const auto& [leaf, value] : model_leaves) {
    const auto before = preset_leaves.find(leaf);
    if (before == preset_leaves.end() || before->second == value) continue;  // a default filled in, or unchanged
    const std::string param = leaf.substr(leaf.rfind('.') + 1);
    if (!shown_by_model_label.count(param)) changed.push_back(leaf);
  }
  return settings_text(changed, model_config, model_leaves);
}

void make_labels_unique(std::vector<SweepPoint>& points) {
  std::map<std::string, std::vector<size_t>> by_label;
  for (size_t k = 0; k < points.size(); ++k) by_label[points[k].label].push_back(k);
  for (const auto& [label, members] : by_label) {
    if (members.size() < 2) continue;
    std::vector<std::map<std::string, json>> leaves(members.size());
    for (size_t i = 0; i < members.size(); ++i) flatten(points[members[i]].config, "", leaves[i]);
    const auto varying = varying_paths(leaves);
    for (size_t i = 0; i < members.size(); ++i)
      points[members[i]].label += settings_text(varying, points[members[i]].config, leaves[i]);
  }
  // Still shared (two settings that print alike): the id tells them apart.
  std::map<std::string, int> uses;
  for (const auto& point : points) ++uses[point.label];
  for (auto& point : points)
    if (uses[point.label] > 1) point.label += " [" + point.id.substr(0, 6) + "]";
}

}  // namespace mixlab
