// `mixlab list [--weights] [--d-model D --heads H]`: every registry entry with its parameters,
// defaults, ranges and docs; with --weights, the names and shapes of its weights.

#include "cli/command.h"
#include "harness/config.h"
#include "core/registry.h"

#include <iomanip>
#include <iostream>

namespace mixlab::cli {
namespace {

struct ListOptions {
  bool weights = false;
  int64_t d_model = 64;
  int64_t heads = 4;
};

int run_list(const ListOptions& options) {
  const auto& registry = Registry::global();
  for (const auto& name : registry.names()) {
    const MixerEntry& entry = registry.at(name);
    std::cout << name << "  [" << to_string(entry.kind) << "]  " << entry.description << "\n";
    for (const auto& spec : entry.params)
      std::cout << "    " << std::left << std::setw(18) << spec.name << std::setw(7) << to_string(spec.type)
                << " default " << std::setw(10) << format_param_value(spec.default_value) << " "
                << std::setw(22) << spec.range_text() << " " << spec.doc << "\n";
    if (options.weights) {
      MixerContext context{options.d_model, options.heads};
      auto mixer = registry.create(name, context);
      std::cout << "    weights (d_model=" << options.d_model << ", heads=" << options.heads << "):\n";
      for (const auto& item : mixer->named_parameters()) {
        std::cout << "      " << std::setw(28) << item.key() << " " << item.value().sizes() << "\n";
      }
      for (const auto& item : mixer->named_buffers())
        std::cout << "      " << std::setw(28) << item.key() << " " << item.value().sizes() << " (buffer)\n";
    }
  }
  std::cout << "\npresets (experiments/presets): ";
  auto presets = preset_names();
  for (size_t i = 0; i < presets.size(); ++i) std::cout << (i ? ", " : "") << presets[i];
  std::cout << "\n";
  return 0;
}

}  // namespace

MIXLAB_REGISTER_COMMAND(list, "list registry entries, their parameters and (with --weights) weight names",
                        [](CLI::App& app) -> Action {
                          auto options = std::make_shared<ListOptions>();
                          app.add_flag("--weights", options->weights, "also print each entry's weight names and shapes");
                          app.add_option("--d-model", options->d_model, "d_model used to show weight shapes")->check(CLI::PositiveNumber);
                          app.add_option("--n-heads", options->heads, "heads used to show weight shapes")->check(CLI::PositiveNumber);
                          add_hidden_alias(app, "--heads", options->heads);
                          return [options] { return run_list(*options); };
                        });

}  // namespace mixlab::cli
