#pragma once
// Counts the FLOPs of the matrix products a piece of code issues, by watching the ATen operators
// it dispatches (RecordFunction callbacks, thread-local): mm, addmm, bmm, baddbmm, mv, addmv, dot
// at 2 FLOPs per multiply-add.  Composite operators (linear, matmul, einsum) end in one of these,
// so only these leaves are counted.  A stand-in for harness/flop_counter.h until that lands.

#include <ATen/record_function.h>
#include <torch/torch.h>

#include <functional>
#include <string>

namespace mixlab::testing {

inline double& matmul_flop_total() {
  static thread_local double total = 0;
  return total;
}

inline std::unique_ptr<at::ObserverContext> count_matmul(const at::RecordFunction& fn) {
  const std::string name = fn.name();
  auto inputs = fn.inputs();
  auto sizes = [&](size_t i) { return inputs[i].toTensor().sizes(); };
  double flops = 0;
  if (name == "aten::mm") {
    flops = 2.0 * sizes(0)[0] * sizes(0)[1] * sizes(1)[1];
  } else if (name == "aten::addmm") {
    flops = 2.0 * sizes(1)[0] * sizes(1)[1] * sizes(2)[1];
  } else if (name == "aten::bmm") {
    flops = 2.0 * sizes(0)[0] * sizes(0)[1] * sizes(0)[2] * sizes(1)[2];
  } else if (name == "aten::baddbmm") {
    flops = 2.0 * sizes(1)[0] * sizes(1)[1] * sizes(1)[2] * sizes(2)[2];
  } else if (name == "aten::mv") {
    flops = 2.0 * sizes(0)[0] * sizes(0)[1];
  } else if (name == "aten::addmv") {
    flops = 2.0 * sizes(1)[0] * sizes(1)[1];
  } else if (name == "aten::dot") {
    flops = 2.0 * sizes(0)[0];
  }
  matmul_flop_total() += flops;
  return nullptr;
}

// FLOPs of the matrix products `work` dispatches on this thread.
inline double count_matmul_flops(const std::function<void()>& work) {
  matmul_flop_total() = 0;
  auto handle = at::addThreadLocalCallback(
      at::RecordFunctionCallback(&count_matmul).needsInputs(true).scopes({at::RecordScope::FUNCTION}));
  try {
    work();
  } catch (...) {
    at::removeCallback(handle);
    throw;
  }
  at::removeCallback(handle);
  return matmul_flop_total();
}

}  // namespace mixlab::testing
