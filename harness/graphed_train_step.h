#pragma once
// The training step as CUDA graphs: zero the gradients, forward and backward over the step's
// micro-batches, clip, AdamW — captured once per shape of the step's inputs, then replayed with
// one launch (issue 13: a small model's eager step is bound by the CPU's kernel launches).
//
// What makes a step replayable (harness/cuda_graph.h has the capture recipe):
//   inputs      static device buffers per shape, written from the host batch before each replay
//   targets     the positions that have a target are found on the host (LossInputs::rows), so the
//               loss has no data-dependent shape and no `.item()`; a step whose count differs from
//               every captured shape gets a graph of its own, up to kMaxShapes, then runs eagerly
//   optimiser   FlatAdamW: its step count and learning rate are device scalars
//   gradients   FlatAdamW's flat gradient buffer, zeroed in the graph, accumulated in place
//   autocast    its weight-cast cache off while capturing and replaying: a cached cast would be a
//               tensor of one capture read by another
// The warm-up before a capture runs whole steps; the optimiser's state and the weights are put
// back afterwards, so a graphed run takes exactly the steps an eager one takes.

#include "harness/flat_adamw.h"
#include "harness/loss_inputs.h"

#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mixlab {

class CapturedCall;

class GraphedTrainStep {
 public:
  // queue_step: queues a whole step on the inputs given (device tensors) and returns its loss, a
  // device scalar; it must launch kernels only.
  using QueueStep = std::function<torch::Tensor(const std::vector<LossInputs>&)>;
  static constexpr int kMaxShapes = 4;

  GraphedTrainStep(QueueStep queue_step, FlatAdamW& optimizer, torch::Device device);
  ~GraphedTrainStep();

  // Replays the graph for these inputs (host tensors), capturing it first if this shape is new;
  // returns the loss tensor (read it after the replay) or an undefined tensor when the step could
  // not be captured: then why_not() says why (until a later step replays) and the caller runs it
  // eagerly.
  torch::Tensor replay(const std::vector<LossInputs>& host_inputs);
  const std::string& why_not() const { return why_not_; }

 private:
  struct Shape;
  Shape* shape_for(const std::vector<LossInputs>& host_inputs);

  QueueStep queue_step_;
  FlatAdamW& optimizer_;
  torch::Device device_;
  std::map<std::vector<int64_t>, std::unique_ptr<Shape>> shapes_;
  std::string why_not_;
  bool capturable_ = true;  // false once a capture failed (a host synchronisation in the step)
};

}  // namespace mixlab
