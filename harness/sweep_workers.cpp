// Worker processes of `mixlab sweep --gpus` (harness/sweep_workers.h).
#include "harness/sweep_workers.h"

#include "harness/config.h"
#include "harness/interrupt.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <chrono>
#include <thread>

extern char** environ;

namespace mixlab {

std::vector<int> parse_gpu_list(const std::string& text, const std::string& origin) {
  std::vector<int> gpus;
  std::set<int> seen;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    const long value = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || value < 0 || value > 4095)
      throw ConfigError(origin, "", "'" + text + "' is not a list of GPU ordinals such as 0,1 (each an integer >= 0)");
    if (!seen.insert(static_cast<int>(value)).second)
      throw ConfigError(origin, "", "GPU " + std::to_string(value) + " is listed twice in '" + text + "'");
    gpus.push_back(static_cast<int>(value));
  }
  if (gpus.empty()) throw ConfigError(origin, "", "is empty; give GPU ordinals such as 0,1");
  return gpus;
}

namespace {

// This process's environment with `overrides` (NAME=value) replacing or adding variables.
std::vector<std::string> environment_with(const std::vector<std::string>& overrides) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('=') + 1);
    const bool replaced = std::any_of(overrides.begin(), overrides.end(),
                                      [&](const std::string& o) { return o.compare(0, name.size(), name) == 0; });
    if (!replaced) env.push_back(entry);
  }
  env.insert(env.end(), overrides.begin(), overrides.end());
  return env;
}

pid_t start_worker(const SweepWorkers& plan, const std::vector<std::string>& overrides) {
  std::vector<std::string> env = environment_with(overrides);
  std::vector<char*> argv{const_cast<char*>(plan.program.c_str())}, envp;
  for (const auto& arg : plan.args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  for (auto& entry : env) envp.push_back(entry.data());
  envp.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("mixlab sweep: cannot start a worker: ") + std::strerror(errno));
  if (pid == 0) {
    ::execve(plan.program.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

}  // namespace

int run_sweep_workers(const SweepWorkers& plan) {
  const size_t count = plan.gpus.size() * static_cast<size_t>(plan.workers_per_gpu);
  // CPU workers share the cores instead of each taking all of them.
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const std::string threads = std::to_string(std::max<size_t>(1, cores / count));
  install_interrupt_handlers();  // Ctrl-C or SIGTERM to this process reaches every worker
  std::vector<pid_t> pids;
  for (size_t w = 0; w < count; ++w) {
    const int gpu = plan.gpus[w % plan.gpus.size()];
    std::vector<std::string> overrides{"MIXLAB_SWEEP_WORKER=" + std::to_string(w)};
    if (plan.cuda) overrides.push_back("CUDA_VISIBLE_DEVICES=" + std::to_string(gpu));
    else if (!std::getenv("OMP_NUM_THREADS")) overrides.push_back("OMP_NUM_THREADS=" + threads);
    pids.push_back(start_worker(plan, overrides));
    std::cout << "sweep worker " << w << " (pid " << pids.back() << ")"
              << (plan.cuda ? " on GPU " + std::to_string(gpu) : std::string(" on the CPU")) << std::endl;
  }
  std::vector<int> statuses(pids.size(), 0);
  std::vector<bool> running(pids.size(), true);
  bool forwarded = false;
  for (size_t left = pids.size(); left > 0;) {
    if (interrupt_requested() && !forwarded) {
      for (size_t w = 0; w < pids.size(); ++w)
        if (running[w]) ::kill(pids[w], interrupt_signal());
      forwarded = true;
    }
    for (size_t w = 0; w < pids.size(); ++w)
      if (running[w] && ::waitpid(pids[w], &statuses[w], WNOHANG) == pids[w]) running[w] = false, --left;
    if (left > 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  remove_interrupt_handlers();
  int failures = 0;
  for (size_t w = 0; w < pids.size(); ++w) {
    const int status = statuses[w];
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
    ++failures;
    std::cerr << "mixlab sweep: worker " << w << " (pid " << pids[w] << ") "
              << (WIFSIGNALED(status) ? "was killed by signal " + std::to_string(WTERMSIG(status))
                                      : "exited with status " + std::to_string(WEXITSTATUS(status)))
              << "\n";
  }
  return failures;
}

}  // namespace mixlab
