#include "harness/interrupt.h"

#include <csignal>

namespace mixlab {

namespace {

volatile std::sig_atomic_t g_signal = 0;

// First signal: remember it and let the work stop at its next check; the default action is put
// back, so a second Ctrl-C ends the process at once.
extern "C" void on_interrupt(int signal_number) {
  g_signal = signal_number;
  std::signal(signal_number, SIG_DFL);
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
