// mixlab: what a token mixer costs and what it buys, measured.

#include "harness/cli/command.h"
#include "harness/config.h"
#include "harness/store.h"
#include "mixers/registry.h"

#include <nlohmann/json.hpp>

#include <iostream>
#include <algorithm>
#include <map>

namespace mixlab::cli {
std::vector<CommandEntry>& commands() {
  static std::vector<CommandEntry> entries;
  return entries;
}
}  // namespace mixlab::cli

int main(int argc, char** argv) {
  CLI::App app{"mixlab: measure what token mixers cost and what they buy"};
  app.require_subcommand(1);
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
  CLI11_PARSE(app, argc, argv);
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
