#pragma once
// A measured call executed as a CUDA graph: captured once for its shapes, then replayed.
//
// Launch overhead is a property of the harness, not of a mixer: a model of many small kernels
// spends most of an eager call in the CPU's launches (issue 13's whole-model table).  A CUDA graph
// records the call's kernels once (cudaStreamBeginCapture ... EndCapture) and replays them with one
// launch, so the time measured is the GPU's.  The recipe is PyTorch's whole-network capture
// (torch.cuda.graphs, "Whole-network capture"): a few eager calls on a side stream first (lazy
// initialisation, cuBLAS workspaces, autograd's streams), gradients set to None before the capture
// so that backward allocates them from the graph's private pool, and every tensor the call reads
// or writes kept alive at a fixed address (the caller holds them).
//
// A call that synchronises with the host (`.item()`, a data-dependent shape) cannot be captured:
// `captured()` is then false and `why_not()` says what the capture reported; the caller runs the
// call eagerly and records that reason.  Eager execution stays the reference.

#include <functional>
#include <memory>
#include <string>

namespace mixlab {

class CapturedCall {
 public:
  // Warms `call` up `warmup` times on a side stream, runs `before_capture` (e.g. setting gradients
  // to None), then captures one call.  Only for calls whose tensors live on the current CUDA
  // device; without CUDA support in this build, never captures.
  CapturedCall(const std::function<void()>& call, int warmup, const std::function<void()>& before_capture = {});
  ~CapturedCall();
  CapturedCall(const CapturedCall&) = delete;
  CapturedCall& operator=(const CapturedCall&) = delete;

  bool captured() const { return captured_; }
  const std::string& why_not() const { return why_not_; }
  // Replays the captured kernels on the current stream (asynchronously, as a launch is).
  void replay();

 private:
  struct Graph;
  std::unique_ptr<Graph> graph_;
  bool captured_ = false;
  std::string why_not_;
};

// Whether this build can capture CUDA graphs at all (compiled with CUDA).
bool cuda_graphs_compiled();

}  // namespace mixlab
