#pragma once
// Running the built `mixlab` binary (MIXLAB_BINARY) from a test: exit status and the output.

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <sys/wait.h>

namespace mixlab::testing {

struct Outcome {
  int status = -1;
  std::string output;  // stdout and stderr together
};

// Run `mixlab ARGS` (a shell fragment) with its output captured in DIR/output.txt; the output
// goes to a file, so stderr is not a terminal (as in a Slurm log).
inline Outcome run_mixlab(const std::string& dir, const std::string& args) {
  const std::string log = dir + "/output.txt";
  const std::string command = std::string("'") + MIXLAB_BINARY + "' " + args + " > '" + log + "' 2>&1";
  const int raw = std::system(command.c_str());
  Outcome outcome;
  outcome.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  std::ifstream in(log);
  outcome.output.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return outcome;
}

inline size_t line_count(const std::string& text) { return std::count(text.begin(), text.end(), '\n'); }

}  // namespace mixlab::testing
