#pragma once
// The sm90 kernels' refusal of a head dim other than 64 or 128 (attention/cuda/sm90/binding.cpp),
// shared by the window and checkpoint tests: `call` must throw a c10::Error that names the binding's
// file, the head dim and the valid ones, before any launch.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace mixlab::testing {

template <class Call>
void expect_head_dim_refused(const char* which, int64_t d, Call call) {
  try {
    call();
    ADD_FAILURE() << which << " took head dim " << d;
  } catch (const c10::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("attention/cuda/sm90/binding.cpp"), std::string::npos) << what;
    EXPECT_NE(what.find("head dim d"), std::string::npos) << what;
    EXPECT_NE(what.find("[64, 128]"), std::string::npos) << what;
  }
}

}  // namespace mixlab::testing
