#pragma once
// What the LibTorch-free device checks (tests/device/*_check.cu) share: a CUDA error check that
// stops the program, and the time of a call replayed in a CUDA graph.

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define DEVICE_CHECK(call)                                                                         \
  do {                                                                                             \
    cudaError_t e_ = (call);                                                                       \
    if (e_ != cudaSuccess) {                                                                       \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      std::exit(2);                                                                                \
    }                                                                                              \
  } while (0)

// µs per call of `run(i, stream)` for i < calls, captured in one CUDA graph (kernels launched as
// programmatic dependents keep that in the graph): the median of 20 replays after 3 warm-ups.
template <typename Run>
double graph_us_per_call(int calls, Run run) {
  cudaStream_t stream;
  DEVICE_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  DEVICE_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  for (int i = 0; i < calls; ++i) run(i, stream);
  DEVICE_CHECK(cudaStreamEndCapture(stream, &graph));
  DEVICE_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  cudaEvent_t start, stop;
  DEVICE_CHECK(cudaEventCreate(&start));
  DEVICE_CHECK(cudaEventCreate(&stop));
  std::vector<float> ms;
  for (int i = 0; i < 23; ++i) {
    DEVICE_CHECK(cudaEventRecord(start, stream));
    DEVICE_CHECK(cudaGraphLaunch(exec, stream));
    DEVICE_CHECK(cudaEventRecord(stop, stream));
    DEVICE_CHECK(cudaEventSynchronize(stop));
    float t = 0;
    DEVICE_CHECK(cudaEventElapsedTime(&t, start, stop));
    if (i >= 3) ms.push_back(t);
  }
  DEVICE_CHECK(cudaGraphExecDestroy(exec));
  DEVICE_CHECK(cudaGraphDestroy(graph));
  DEVICE_CHECK(cudaStreamDestroy(stream));
  std::sort(ms.begin(), ms.end());
  return 1000.0 * ms[ms.size() / 2] / calls;
}
