#include "harness/flop_counter.h"

#include <ATen/record_function.h>
#include <torch/torch.h>

namespace mixlab {
namespace {

thread_local FlopCounter* active_counter = nullptr;

std::vector<int64_t> shape_of(const c10::IValue& value) {
  if (!value.isTensor()) return {};
  const auto& tensor = value.toTensor();
  if (!tensor.defined()) return {};
  return tensor.sizes().vec();
}

// FLOPs of one matrix-product operator from its input shapes; 0 for anything else.
double product_flops(const std::string& op, c10::ArrayRef<const c10::IValue> inputs) {
  auto operand = [&](size_t i) { return i < inputs.size() ? shape_of(inputs[i]) : std::vector<int64_t>{}; };
  if (op == "aten::mm") {
    auto a = operand(0), b = operand(1);
    if (a.size() == 2 && b.size() == 2) return 2.0 * a[0] * a[1] * b[1];
  } else if (op == "aten::addmm") {
    auto a = operand(1), b = operand(2);
    if (a.size() == 2 && b.size() == 2) return 2.0 * a[0] * a[1] * b[1];
  } else if (op == "aten::bmm") {
    auto a = operand(0), b = operand(1);
    if (a.size() == 3 && b.size() == 3) return 2.0 * a[0] * a[1] * a[2] * b[2];
  } else if (op == "aten::baddbmm") {
    auto a = operand(1), b = operand(2);
    if (a.size() == 3 && b.size() == 3) return 2.0 * a[0] * a[1] * a[2] * b[2];
  } else if (op == "aten::mv") {
    auto a = operand(0);
    if (a.size() == 2) return 2.0 * a[0] * a[1];
  } else if (op == "aten::addmv") {
    auto a = operand(1);
    if (a.size() == 2) return 2.0 * a[0] * a[1];
  } else if (op == "aten::dot" || op == "aten::vdot") {
    auto a = operand(0);
    if (a.size() == 1) return 2.0 * a[0];
  }
  return 0.0;
}

std::unique_ptr<at::ObserverContext> on_operator(const at::RecordFunction& fn) {
  if (active_counter) {
    const std::string op = fn.name();
    active_counter->record(op, product_flops(op, fn.inputs()));
  }
  return nullptr;
}

}  // namespace

FlopCounter::FlopCounter() : previous_(active_counter) {
  active_counter = this;
  handle_ = at::addThreadLocalCallback(
      at::RecordFunctionCallback(&on_operator).needsInputs(true).scopes({at::RecordScope::FUNCTION}));
}

FlopCounter::~FlopCounter() {
  at::removeCallback(handle_);
  active_counter = previous_;
}

void FlopCounter::record(const std::string& op, double flops) {
  calls_[op] += 1;
  matmul_flops_ += flops;
}

}  // namespace mixlab
