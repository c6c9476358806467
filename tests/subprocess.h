#pragma once
// Running the mixlab binary from a test without a shell (arguments pass byte for byte), with its
// stdout and stderr captured.

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace mixlab::testing {

struct ProcessResult {
  int status = -1;  // as from waitpid
  std::string out, err;
  bool exited_with(int code) const { return WIFEXITED(status) && WEXITSTATUS(status) == code; }
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Starts `program args...` with stdout/stderr into `capture_prefix`.out/.err; returns its pid.
inline pid_t start_process(const std::string& program, const std::vector<std::string>& args,
                           const std::string& capture_prefix) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int out = ::open((capture_prefix + ".out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open((capture_prefix + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(out, 1);
    ::dup2(err, 2);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(program.c_str()));
    for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    ::execv(program.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

inline ProcessResult wait_process(pid_t pid, const std::string& capture_prefix) {
  ProcessResult result;
  ::waitpid(pid, &result.status, 0);
  result.out = slurp(capture_prefix + ".out");
  result.err = slurp(capture_prefix + ".err");
  return result;
}

inline ProcessResult run_process(const std::string& program, const std::vector<std::string>& args,
                                 const std::string& capture_prefix) {
  return wait_process(start_process(program, args, capture_prefix), capture_prefix);
}

}  // namespace mixlab::testing
