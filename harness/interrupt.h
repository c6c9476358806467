#pragma once
// Ctrl-C and SIGTERM during long work (a sweep, a training run): the first signal sets a flag
// that the work checks between two timed calls or two training steps, and the point in flight
// ends cleanly (recorded as not started, so a rerun resumes there); a second signal ends the
// process at once, as without a handler, unless it comes within half a second of the first:
// that is the same interrupt delivered twice (`timeout` signals its child and the child's
// process group), and ending at once would leave the point in flight claimed.

#include <stdexcept>

namespace mixlab {

struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted by a signal") {}
};

// Installs the SIGINT/SIGTERM handlers (idempotent) and clears the flag.
void install_interrupt_handlers();
// Restores the default actions.
void remove_interrupt_handlers();
bool interrupt_requested();
// The signal that interrupted (SIGINT or SIGTERM), 0 when none.
int interrupt_signal();
inline void throw_if_interrupted() {
  if (interrupt_requested()) throw Interrupted();
}

}  // namespace mixlab
