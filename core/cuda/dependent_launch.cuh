#pragma once
// Programmatic dependent launch (Hopper; CUDA programming guide, "Programmatic Dependent Launch and
// Synchronization"), for the chains of small kernels of a decode step (issue 13: a Mamba step is
// six dependent kernels per layer of a few µs each, and the gap between two of them, the next
// kernel's launch and its first loads from DRAM, was a large part of each):
//
//   kernel k+1 is launched with programmatic stream serialisation: it may start once every block of
//   kernel k has called let_dependents_launch() (or exited), runs its prologue, which reads only
//   what no earlier kernel of the stream writes (weights, constants), then wait_for_prerequisites()
//   returns once kernel k has completed and its memory is visible.
//
// The contract of a kernel launched by launch_dependent:
//   1. before wait_for_prerequisites(): loads of inputs no kernel of the stream writes, no stores;
//   2. let_dependents_launch() after wait_for_prerequisites(), so that when kernel k+1 starts,
//      kernel k−1 has completed (kernel k waited for it): only kernel k can still be running.
// A kernel launched plainly runs both calls as no-ops (it starts after its predecessor completes),
// so the same kernel serves either launch.  MIXLAB_PDL=0 in the environment launches every kernel
// plainly (the A/B of bench/decode_issue13.sh).

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "core/ab_switch.h"

namespace mixlab::cuda::detail {

// Blocks until the grid this one depends on programmatically has completed and its memory is
// visible; returns at once in a grid launched without the attribute.
__device__ __forceinline__ void wait_for_prerequisites() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lets the next grid of the stream start its prologue once every block of this one has called it.
__device__ __forceinline__ void let_dependents_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

// Whether launch_dependent uses the attribute: not when MIXLAB_PDL is "0" (core/ab_switch.h).
inline bool dependent_launch_enabled() {
  static const bool enabled = ab_switch_on("MIXLAB_PDL");
  return enabled;
}

// kernel<<<grid, block, shared_bytes, stream>>>(args...) as a programmatic dependent of the
// stream's previous kernel (a plain launch where dependent_launch_enabled() is false).  Throws
// with `what` on a launch error.
template <typename... Params, typename... Args>
void launch_dependent(const char* what, void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
                      cudaStream_t stream, Args... args) {
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  config.attrs = &attribute;
  config.numAttrs = dependent_launch_enabled() ? 1 : 0;
  const cudaError_t error = cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...);
  if (error != cudaSuccess) throw std::runtime_error(std::string(what) + ": launch: " + cudaGetErrorString(error));
}

}  // namespace mixlab::cuda::detail
