// sm90::available(): asks the GPU once whether the kernels of this tree were compiled for it with
// wgmma (MIXLAB_SM90A, wgmma.cuh).

#include <cuda_runtime.h>

#include "attention/cuda/sm90/available.h"
#include "attention/cuda/sm90/wgmma.cuh"

namespace mixlab::cuda::sm90 {
namespace {

__global__ void built_with_wgmma(int* out) { *out = MIXLAB_SM90A; }

bool ask_device() {
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess || major != 9)
    return false;
  int* flag = nullptr;
  int built = 0;
  if (cudaMalloc(&flag, sizeof(int)) != cudaSuccess) return false;
  built_with_wgmma<<<1, 1>>>(flag);
  const bool ok = cudaGetLastError() == cudaSuccess &&
                  cudaMemcpy(&built, flag, sizeof(int), cudaMemcpyDeviceToHost) == cudaSuccess;
  cudaFree(flag);
  return ok && built == 1;
}

}  // namespace

bool available() {
  static const bool answer = ask_device();  // one GPU generation per process
  return answer;
}

}  // namespace mixlab::cuda::sm90
