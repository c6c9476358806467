#pragma once
// What a device test needs first: whether a CUDA GPU is there, and the skip when it is not.

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace mixlab::testing {

inline bool gpu_ready() {
#ifdef MIXLAB_WITH_CUDA
  return torch::cuda::is_available();
#else
  return false;
#endif
}

}  // namespace mixlab::testing

#define MIXLAB_REQUIRE_GPU() \
  if (!mixlab::testing::gpu_ready()) GTEST_SKIP() << "skipped: no GPU"
