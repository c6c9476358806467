#pragma once
// Which implementation of an op ran: its CUDA kernel, or the mixer's own device-agnostic
// reference (the only two meanings an op has; docs/gpu.md).  Every op with a kernel records its
// choice at its dispatch point; the harness opens an ImplementationLog around a measured phase or
// a training run and stores the summary beside the numbers, so a row says what produced it.

#include <map>
#include <string>

namespace mixlab {

enum class Implementation { kernel, reference };

// Called by a dispatch point (e.g. sliding_window_attention) each time it runs.  Costs nothing
// when no log is open on this thread.
void record_implementation(const char* op, Implementation which);

// Collects what ran on this thread while it lives (logs nest: the innermost one collects).
class ImplementationLog {
 public:
  ImplementationLog();
  ~ImplementationLog();
  ImplementationLog(const ImplementationLog&) = delete;
  ImplementationLog& operator=(const ImplementationLog&) = delete;

  // "op=kernel, op2=reference" in op order ("op=kernel+reference" when both ran);
  // "library" when only LibTorch's own operators ran (no op with a kernel was called).
  std::string summary() const;

 private:
  friend void record_implementation(const char*, Implementation);
  std::map<std::string, unsigned> seen_;  // op -> bit 1 kernel, bit 2 reference
  ImplementationLog* outer_;
};

}  // namespace mixlab
