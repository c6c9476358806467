#include "harness/interrupt.h"

#include <atomic>
#include <csignal>
#include <cstdint>
#include <ctime>

namespace mixlab {

namespace {

volatile std::sig_atomic_t g_signal = 0;
std::atomic<int64_t> g_first_ms{0};  // monotonic time of the first signal
static_assert(std::atomic<int64_t>::is_always_lock_free, "the signal handler needs a lock-free atomic");

// A second signal this soon after the first is the same interrupt delivered twice: `timeout`
// signals its child and then the child's process group, which holds the child too.
constexpr int64_t kSameInterruptMs = 500;

int64_t monotonic_ms() {  // clock_gettime is async-signal-safe
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1000000;
}

// First signal: remember it and let the work stop at its next check.  A later one (after
// kSameInterruptMs) ends the process at once, as without a handler.
extern "C" void on_interrupt(int signal_number) {
  const int64_t now = monotonic_ms();
  if (g_signal == 0) {
    g_first_ms.store(now);
    g_signal = signal_number;
    return;
  }
  if (now - g_first_ms.load() < kSameInterruptMs) return;
  std::signal(signal_number, SIG_DFL);
  std::raise(signal_number);
}

}  // namespace

void install_interrupt_handlers() {
  g_signal = 0;
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
}

void remove_interrupt_handlers() {
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
}

bool interrupt_requested() { return g_signal != 0; }
int interrupt_signal() { return g_signal; }

}  // namespace mixlab
