#include "harness/cuda_graph.h"

#ifdef MIXLAB_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

#include <cstdlib>
#include <exception>
#include <iostream>
#include <map>
#include <mutex>

namespace mixlab {

#ifdef MIXLAB_WITH_CUDA

struct CapturedCall::Graph {
  at::cuda::CUDAGraph graph;
};

bool cuda_graphs_compiled() { return true; }

namespace {

// The first line of an exception's message (LibTorch appends a C++ backtrace).
std::string first_line(const std::exception& error) {
  std::string text = error.what();
  const auto end = text.find('\n');
  return end == std::string::npos ? text : text.substr(0, end);
}

// The one side stream every capture on `device` warms up and captures on (as torch.cuda.graph's
// default capture stream).  Not a fresh stream from the pool per capture: cuBLAS keeps a
// workspace (32 MiB on an H200) for every (handle, stream) pair it has run on, allocated from the
// caching allocator and never freed, so a new stream per capture left up to 32 such workspaces
// (1 GiB) allocated, and every later peak-memory row counted them (docs/results/scout-paper).
c10::cuda::CUDAStream capture_stream() {
  static std::mutex guard;
  static std::map<c10::DeviceIndex, c10::cuda::CUDAStream> streams;
  const std::lock_guard<std::mutex> lock(guard);
  const auto device = c10::cuda::current_device();
  auto found = streams.find(device);
  if (found == streams.end()) found = streams.emplace(device, at::cuda::getStreamFromPool(false, device)).first;
  return found->second;
}

}  // namespace

CapturedCall::CapturedCall(const std::function<void()>& call, int warmup, const std::function<void()>& before_capture)
    : graph_(std::make_unique<Graph>()) {
  const auto main_stream = at::cuda::getCurrentCUDAStream();
  const auto side = capture_stream();
  try {
    // Eager warm-up on the side stream, ordered after everything already queued on the main one.
    at::cuda::CUDAEvent queued;
    queued.record(main_stream);
    queued.block(side);
    {
      const c10::cuda::CUDAStreamGuard on_side(side);
      for (int i = 0; i < warmup; ++i) call();
      if (before_capture) before_capture();
    }
    side.synchronize();
  } catch (const std::exception& error) {
    why_not_ = "the eager warm-up failed: " + first_line(error);
    return;
  }
  const c10::cuda::CUDAStreamGuard on_side(side);
  try {
    graph_->graph.capture_begin();
  } catch (const std::exception& error) {
    why_not_ = "capture did not begin: " + first_line(error);
    return;
  }
  try {
    call();
  } catch (const std::exception& error) {
    why_not_ = "not capturable: " + first_line(error);
    // The whole message (with TORCH_SHOW_CPP_STACKTRACES=1, LibTorch's backtrace): which op it was.
    if (std::getenv("MIXLAB_DEBUG_CAPTURE")) std::cerr << "capture failed: " << error.what() << "\n";
  }
  try {
    graph_->graph.capture_end();  // also ends the capture after a failed call (and then throws)
  } catch (const std::exception& error) {
    if (why_not_.empty()) why_not_ = "capture failed: " + first_line(error);
  }
  if (!why_not_.empty()) {
    (void)cudaGetLastError();  // a failed capture leaves its error for the next runtime call
    graph_ = std::make_unique<Graph>();
    return;
  }
  captured_ = true;
  side.synchronize();
}

void CapturedCall::replay() {
  if (captured_) graph_->graph.replay();
}

#else

struct CapturedCall::Graph {};

bool cuda_graphs_compiled() { return false; }

CapturedCall::CapturedCall(const std::function<void()>&, int, const std::function<void()>&)
    : why_not_("this build has no CUDA support") {}

void CapturedCall::replay() {}

#endif

CapturedCall::~CapturedCall() = default;

}  // namespace mixlab
