// mixlab: what a token mixer costs and what it buys, measured.

#include "git_commit.h"  // generated: MIXLAB_GIT_COMMIT
#include "cli/command.h"
#include "harness/config.h"
#include "harness/store.h"
#include "core/compat.h"
#include "core/registry.h"

#if defined(MIXLAB_WITH_CUDA) && __has_include(<cuda_runtime_api.h>)
#include <cuda_runtime_api.h>
#endif

#include <nlohmann/json.hpp>

#include <iostream>
#include <algorithm>
#include <map>

namespace mixlab::cli {
std::vector<CommandEntry>& commands() {
  static std::vector<CommandEntry> entries;
  return entries;
}

// "mixlab 0.1.0 (commit 1a2b3c4d5e6f), LibTorch 1.13.1, CUDA: not built (CPU only)"
std::string version_text() {
  std::string cuda = "not built (CPU only)";
#if defined(MIXLAB_WITH_CUDA) && defined(CUDART_VERSION)
  cuda = std::to_string(CUDART_VERSION / 1000) + "." + std::to_string(CUDART_VERSION % 1000 / 10) + " (" +
         std::to_string(torch::cuda::device_count()) + " device(s) visible)";
#elif defined(MIXLAB_WITH_CUDA)
  cuda = "built (" + std::to_string(torch::cuda::device_count()) + " device(s) visible)";
#endif
  return std::string("mixlab ") + MIXLAB_VERSION + " (commit " + MIXLAB_GIT_COMMIT + "), LibTorch " +
         mixlab::compat::torch_version_string() + ", CUDA " + cuda;
}

// The subcommand the user was typing ("mixer run"), for the hint after a usage error.
std::string chosen_command(CLI::App& app) {
  std::string name;
  for (CLI::App* sub = &app; !sub->get_subcommands().empty();) {
    sub = sub->get_subcommands().front();
    name += (name.empty() ? "" : " ") + sub->get_name();
  }
  return name;
}

}  // namespace mixlab::cli

int main(int argc, char** argv) {
  CLI::App app{"mixlab: measure what token mixers cost and what they buy"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::function<std::string()>(mixlab::cli::version_text), "print the version, git commit, LibTorch and CUDA");
  app.option_defaults()->always_capture_default();  // every --help shows the defaults
  std::map<std::string, mixlab::cli::Action> actions;
  std::map<std::string, CLI::App*> subcommands;
  // Top-level commands first, so that "report" exists before "report table" nests under it.
  auto entries = mixlab::cli::commands();
  std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return (a.name.find(' ') == std::string::npos) > (b.name.find(' ') == std::string::npos);
  });
  for (const auto& entry : entries) {
    // A name with a space ("mixer run") is a nested subcommand.
    CLI::App* parent = &app;
    std::string name = entry.name;
    auto space = name.find(' ');
    if (space != std::string::npos) {
      const std::string group = name.substr(0, space);
      if (!subcommands.count(group)) {
        subcommands[group] = app.add_subcommand(group, group + " commands");
        subcommands[group]->require_subcommand(1);
      }
      parent = subcommands[group];
      name = name.substr(space + 1);
    }
    CLI::App* sub = parent->add_subcommand(name, entry.description);
    subcommands[entry.name] = sub;
    actions[entry.name] = entry.setup(*sub);
  }
  // Usage errors (CLI11's own included) print one line and exit with status 2; --help and
  // --version print and exit with 0.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == 0) return app.exit(error);
    const std::string command = mixlab::cli::chosen_command(app);
    std::cerr << "mixlab" << (command.empty() ? "" : " " + command) << ": " << error.what() << " (see mixlab "
              << (command.empty() ? "" : command + " ") << "--help)\n";
    return 2;
  }
  try {
    for (const auto& [name, action] : actions)
      if (subcommands[name]->parsed() && subcommands[name]->get_subcommands().empty()) return action();
  } catch (const mixlab::ConfigError& error) {
    std::cerr << "mixlab: " << error.what() << "\n";
    return 2;
  } catch (const mixlab::RegistryError& error) {
    std::cerr << "mixlab: " << error.what() << "\n";
    return 2;
  } catch (const mixlab::NotMixlabDatabase& error) {
    std::cerr << "mixlab: " << error.what() << "\n";
    return 2;
  } catch (const nlohmann::json::exception& error) {
    // A JSON value of an unexpected type that no check caught: still bad input, still one line.
    const std::string what = error.what();
    const auto bracket = what.find("] ");
    std::cerr << "mixlab: invalid value in the input: " << (bracket == std::string::npos ? what : what.substr(bracket + 2))
              << "\n";
    return 2;
  } catch (const std::exception& error) {
    // One line: a c10::Error carries a LibTorch backtrace after its first line.
    const std::string what = error.what();
    std::cerr << "mixlab: error: " << what.substr(0, what.find('\n')) << "\n";
    return 1;
  }
  return 0;
}
