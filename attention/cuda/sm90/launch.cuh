#pragma once
// Launching an sm90 kernel: refuse where the kernels cannot run (sm90::available()), raise the
// dynamic shared-memory limit to what the kernel asks, launch, and turn a launch error into an
// exception that names the kernel.

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "attention/cuda/sm90/available.h"

namespace mixlab::cuda::sm90 {

template <class Kernel, class... Args>
void launch(const char* name, Kernel kernel, dim3 grid, int threads, size_t shared_bytes, void* stream,
            Args... args) {
  if (!available())
    throw std::invalid_argument(std::string("attention/cuda/sm90/") + name +
                                ": needs a compute-capability 9.x GPU (Hopper) and a build for sm_90a "
                                "(CMAKE_CUDA_ARCHITECTURES=90a)");
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared_bytes));
  kernel<<<grid, threads, shared_bytes, static_cast<cudaStream_t>(stream)>>>(args...);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("attention/cuda/sm90/") + name + ": launch: " + cudaGetErrorString(err));
}

}  // namespace mixlab::cuda::sm90
