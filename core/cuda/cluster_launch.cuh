#pragma once
// Thread block clusters (Hopper; CUDA programming guide, "Thread Block Clusters" and "Distributed
// Shared Memory"), for the decode step's kernels that would otherwise end in a second kernel that
// merges their blocks' partial results (issue 13: a decode step is a chain of small dependent
// kernels, each a few µs even replayed):
//
//   the blocks of one cluster run at once on one GPU processing cluster and may read each other's
//   shared memory (cooperative_groups::cluster_group::map_shared_rank) after a cluster barrier,
//   so one block can merge what its peers computed without a trip through global memory or a launch.
//
// launch_dependent_cluster launches as launch_dependent (core/cuda/dependent_launch.cuh) does, with
// a cluster shape as well; the kernel keeps that header's contract.  A block must not exit while a
// peer may still read its shared memory: end with a cluster barrier after the last remote read.

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "core/cuda/dependent_launch.cuh"

namespace mixlab::cuda::detail {

// The cluster barrier in two halves (all threads of every block of the cluster call both, in order):
// arrive once this block's remote reads are done, wait before it exits.
__device__ __forceinline__ void cluster_arrive() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void cluster_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory");
#endif
}

// Whether `kernel` can run as clusters here: a GPU of compute capability 9 and the kernel built from
// sm_90 code (a build for an older architecture compiles the cluster parts out).  Asked per call;
// callers keep the answer in a static.
template <typename... Params>
bool clusters_run(void (*kernel)(Params...)) {
  int device = 0, major = 0;
  cudaFuncAttributes attributes{};
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess || major != 9)
    return false;
  return cudaFuncGetAttributes(&attributes, kernel) == cudaSuccess && attributes.ptxVersion >= 90;
}

// kernel<<<grid, block, shared_bytes, stream>>>(args...) in clusters of (cluster_x, 1, 1) blocks
// (grid.x a multiple of cluster_x, at most 8: the portable size), as a programmatic dependent of
// the stream's previous kernel where dependent_launch_enabled().  Throws with `what` on an error.
template <typename... Params, typename... Args>
void launch_dependent_cluster(const char* what, void (*kernel)(Params...), dim3 grid, dim3 block,
                              size_t shared_bytes, unsigned cluster_x, cudaStream_t stream, Args... args) {
  if (cluster_x < 1 || cluster_x > 8 || grid.x % cluster_x != 0)
    throw std::invalid_argument(std::string(what) + ": clusters of " + std::to_string(cluster_x) +
                                " blocks over a grid of " + std::to_string(grid.x) +
                                " (1 to 8 blocks, dividing the grid's x)");
  cudaLaunchAttribute attributes[2] = {};
  attributes[0].id = cudaLaunchAttributeClusterDimension;
  attributes[0].val.clusterDim.x = cluster_x;
  attributes[0].val.clusterDim.y = 1;
  attributes[0].val.clusterDim.z = 1;
  attributes[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attributes[1].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  config.attrs = attributes;
  config.numAttrs = dependent_launch_enabled() ? 2 : 1;
  const cudaError_t error = cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...);
  if (error != cudaSuccess) throw std::runtime_error(std::string(what) + ": launch: " + cudaGetErrorString(error));
}

}  // namespace mixlab::cuda::detail
