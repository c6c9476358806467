// libFuzzer target: the spec reader (docs/sweeps.md) on arbitrary bytes.
//
// The input is split at its first newline: the first line is a `--set` assignment, the rest the
// spec text.  The target parses the text as mixlab parses a spec file (comments, depth limit,
// number limits), applies the assignment, then walks what a spec's model and sweep sections go
// through before the registry builds anything: dotted-path lookups for every grid/zip axis,
// preset resolution (the real presets folder) and strict model validation.  Every failure must
// be a ConfigError (or a RegistryError naming a mixer); anything else — a signal, a sanitizer
// report, another exception — is a finding.
//
// Build and run: scripts/fuzz.sh (a separate build folder, clang with ASan + UBSan).

#include "harness/config.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace {

void walk_spec(const mixlab::json& spec) {
  using mixlab::json;
  if (!spec.is_object()) return;
  json base = spec.contains("base") && spec["base"].is_object() ? spec["base"] : json::object();
  for (const char* section : {"grid", "zip"}) {
    if (!spec.contains(section) || !spec[section].is_object()) continue;
    for (auto it = spec[section].begin(); it != spec[section].end(); ++it) {
      mixlab::get_dotted(base, it.key());
      if (it.value().is_array() && !it.value().empty()) mixlab::set_dotted(base, it.key(), it.value().front());
    }
  }
  if (base.contains("model")) mixlab::parse_model_config(base["model"], "fuzz.json", "base.model");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const auto newline = input.find('\n');
  const std::string assignment = newline == std::string::npos ? std::string() : input.substr(0, newline);
  const std::string text = newline == std::string::npos ? input : input.substr(newline + 1);
  try {
    mixlab::json spec = mixlab::parse_json_text(text, "fuzz.json");
    if (!assignment.empty()) mixlab::apply_dotted_set(spec, assignment);
    walk_spec(spec);
    spec.dump();  // the error texts dump values; this must not recurse without bound
  } catch (const mixlab::ConfigError&) {
  } catch (const mixlab::RegistryError&) {
  }
  return 0;
}
