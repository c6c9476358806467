#pragma once
// Subcommands of the `mixlab` CLI register themselves, one file each:
//
//   MIXLAB_REGISTER_COMMAND(list, "list registry entries", [](CLI::App& app) {
//     auto options = std::make_shared<ListOptions>();
//     app.add_flag("--weights", options->weights, "...");
//     return [options] { return run_list(*options); };   // returns the exit status
//   });
//
// The setup function adds options to its CLI11 subcommand and returns the action to run when
// that subcommand is chosen.  ConfigError and RegistryError thrown from an action print one
// line and exit with status 2.

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace mixlab::cli {

using Action = std::function<int()>;
using Setup = std::function<Action(CLI::App&)>;

struct CommandEntry {
  std::string name;
  std::string description;
  Setup setup;
};

std::vector<CommandEntry>& commands();

// A second spelling of an option, kept for old command lines: it fills the same variable and is
// not listed in --help.
template <typename T>
CLI::Option* add_hidden_alias(CLI::App& app, const std::string& name, T& variable) {
  return app.add_option(name, variable)->group("");
}

struct CommandRegistrar {
  CommandRegistrar(std::string name, std::string description, Setup setup) {
    commands().push_back({std::move(name), std::move(description), std::move(setup)});
  }
};

}  // namespace mixlab::cli

#define MIXLAB_REGISTER_COMMAND(identifier, description, setup) \
  static const ::mixlab::cli::CommandRegistrar mixlab_command_##identifier(#identifier, description, setup)
