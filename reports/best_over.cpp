#include "reports/best_over.h"

#include "reports/database.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace mixlab::reports {
namespace {

// "a.b.0.c" -> the JSON pointer "/a/b/0/c" (array indices as numbers, as JSON pointers have them).
nlohmann::json::json_pointer pointer_of(const std::string& dotted) {
  std::string path = "/" + dotted;
  std::replace(path.begin(), path.end(), '.', '/');
  return nlohmann::json::json_pointer(path);
}

// The configuration without the value at `dotted` (unchanged when absent).
nlohmann::json without(nlohmann::json config, const std::string& dotted) {
  const auto pointer = pointer_of(dotted);
  if (dotted_value(config, dotted).is_null()) return config;
  auto& parent = config[pointer.parent_pointer()];
  if (parent.is_object()) parent.erase(pointer.back());
  return config;
}

}  // namespace

nlohmann::json dotted_value(const nlohmann::json& config, const std::string& dotted) {
  try {
    const auto pointer = pointer_of(dotted);
    return config.contains(pointer) ? config.at(pointer) : nlohmann::json();
  } catch (const nlohmann::json::exception&) {  // a malformed path, e.g. "a..b" or "pattern.x" into a list
    return nullptr;
  }
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
      groups.push_back({std::move(rest), "", nullptr, std::nan(""), 0, 0});
    }
    AxisBest& group = groups[found->second];
    ++group.candidates;
    if (candidate.finished) ++group.finished;
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
