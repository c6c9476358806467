#pragma once
// `--set PATH=VALUE` means the same in every command (docs/sweeps.md, "Overrides"): PATH starts
// with a config section, model., measure. or train., and may carry a sweep spec's "base." in
// front (`base.measure.repeats=5` = `measure.repeats=5`).  `mixlab sweep` also takes the spec's
// own top-level fields (name, description, grid.*, zip.*, points.*).

#include "harness/config.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

namespace mixlab::cli {

// "base.measure.repeats=5" -> "measure.repeats=5"; anything else unchanged.
inline std::string without_base_prefix(const std::string& assignment) {
  return assignment.rfind("base.", 0) == 0 ? assignment.substr(5) : assignment;
}

inline std::string first_path_segment(const std::string& assignment) {
  return assignment.substr(0, std::min(assignment.find('.'), assignment.find('=')));
}

// Apply --set assignments to a config of sections (`config` = {"model", "measure", "train"}),
// accepting only the sections this command has; a wrong one is a one-line ConfigError saying
// which sections are valid (e.g. `bench --set train.steps=3`: bench does not train).
inline void apply_section_sets(json& config, const std::vector<std::string>& assignments,
                               const std::set<std::string>& sections, const std::string& command,
                               const std::string& hint = "") {
  for (const auto& given : assignments) {
    const std::string assignment = without_base_prefix(given);
    const std::string section = first_path_segment(assignment);
    if (!sections.count(section)) {
      std::string valid;
      for (const auto& s : sections) valid += (valid.empty() ? "" : ", ") + s + ".*";
      throw ConfigError("--set", given, "'" + section + "' is not a section " + command + " reads" + hint +
                                            "; valid: " + valid);
    }
    try {
      apply_dotted_set(config, assignment);
    } catch (const ConfigError& error) {
      throw ConfigError("--set", given, error.detail);
    }
  }
}

}  // namespace mixlab::cli
