#include "reports/best_over.h"

#include "reports/database.h"

#include <cmath>
#include <map>
#include <sstream>

namespace mixlab::reports {
namespace {

std::vector<std::string> split_dotted(const std::string& dotted) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(dotted);
  while (std::getline(in, part, '.')) parts.push_back(part);
  return parts;
}

bool is_index(const std::string& part) {
  return !part.empty() && part.size() <= 9 && part.find_first_not_of("0123456789") == std::string::npos;
}

// The configuration without the value at `dotted` (unchanged when absent).
nlohmann::json without(nlohmann::json config, const std::string& dotted) {
  const auto parts = split_dotted(dotted);
  nlohmann::json* node = &config;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (node->is_array() && is_index(parts[i]) && std::stoul(parts[i]) < node->size())
      node = &(*node)[std::stoul(parts[i])];
    else if (node->is_object() && node->contains(parts[i]))
      node = &(*node)[parts[i]];
    else
      return config;
  }
  if (node->is_object()) node->erase(parts.back());
  return config;
}

}  // namespace

nlohmann::json dotted_value(const nlohmann::json& config, const std::string& dotted) {
  const nlohmann::json* node = &config;
  for (const auto& part : split_dotted(dotted)) {
    if (node->is_array() && is_index(part) && std::stoul(part) < node->size())
      node = &(*node)[std::stoul(part)];
    else if (node->is_object() && node->contains(part))
      node = &(*node)[part];
    else
      return nullptr;
  }
  return *node;
}

std::vector<AxisBest> best_over_axis(const std::vector<AxisCandidate>& candidates, const std::string& axis) {
  bool any_has_axis = false;
  std::vector<AxisBest> groups;
  std::map<std::string, size_t> group_of;  // canonical JSON (dump sorts keys) -> index
  for (const auto& candidate : candidates) {
    const nlohmann::json axis_value = dotted_value(candidate.config, axis);
    any_has_axis = any_has_axis || !axis_value.is_null();
    nlohmann::json rest = without(candidate.config, axis);
    const std::string key = rest.dump();
    auto found = group_of.find(key);
    if (found == group_of.end()) {
      found = group_of.emplace(key, groups.size()).first;
      groups.push_back({std::move(rest), "", nullptr, std::nan(""), 0});
    }
    AxisBest& group = groups[found->second];
    ++group.candidates;
    if (std::isfinite(candidate.value) && !(candidate.value <= group.value)) {  // NaN group value: take it
      group.value = candidate.value;
      group.point_id = candidate.point_id;
      group.axis_value = axis_value;
    }
  }
  if (!candidates.empty() && !any_has_axis)
    throw ReportError("--best-over " + axis + ": no point's configuration has this path (e.g. train.lr)");
  return groups;
}

}  // namespace mixlab::reports
