#pragma once
// A step's loss on its way to the host.
//
// Reading a loss with `.item()` makes the host wait until the GPU has run everything queued so
// far.  A training loop that reads each step's loss before it prepares the next batch therefore
// alternates: the host makes a batch while the GPU idles, then the GPU runs the step while the
// host waits.  A PendingLoss copies the loss into pinned host memory without waiting (an
// asynchronous copy, ordered after the step on the current stream) and records a CUDA event
// behind it; `value()` waits for that event only, so a loop can queue step t + 1 and then read
// step t's loss while the GPU is still busy with t + 1.
//
// On the CPU the loss is already computed when the step returns: `value()` reads it.

#include <torch/torch.h>

#include <memory>

namespace mixlab {

class PendingLoss {
 public:
  // loss: a scalar on any device; its value at this point of the current stream is kept (a
  // later kernel that overwrites the tensor, e.g. the next replay of a CUDA graph, does not
  // change what value() returns).
  explicit PendingLoss(const torch::Tensor& loss);
  ~PendingLoss();
  PendingLoss(PendingLoss&&) noexcept;
  PendingLoss& operator=(PendingLoss&&) noexcept;

  // Waits for the copy (not for work queued after it) and returns the loss as a double.
  double value();

 private:
  struct Event;
  torch::Tensor host_;            // [] float64, pinned on CUDA
  std::unique_ptr<Event> ready_;  // CUDA: recorded after the copy; null on the CPU
};

}  // namespace mixlab
