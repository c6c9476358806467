#pragma once
// Test-only probes that observe what a forward pass really does, independently of the code
// under test:
//   MatmulFlopProbe     counts the FLOPs of every matrix product the dispatcher runs
//                       (aten::mm, bmm, addmm, baddbmm, mv, addmv, dot), from their input shapes,
//                       through an ATen RecordFunction callback.  A multiply-add is 2 FLOPs.
//   LargestCpuAllocation records the largest single CPU allocation, by wrapping the CPU
//                       allocator, so a test can assert that no N×N buffer was ever made.
// Both are scoped (RAII) and meant for one thread.  (harness/flop_counter.h, once on main, may
// replace the first.)

#include <ATen/record_function.h>
#include <c10/core/CPUAllocator.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

namespace mixlab::testing {

class MatmulFlopProbe {
 public:
  MatmulFlopProbe() {
    total() = 0;
    handle_ = at::addThreadLocalCallback(
        at::RecordFunctionCallback(&MatmulFlopProbe::on_start).needsInputs(true));
  }
  ~MatmulFlopProbe() { at::removeCallback(handle_); }
  MatmulFlopProbe(const MatmulFlopProbe&) = delete;
  MatmulFlopProbe& operator=(const MatmulFlopProbe&) = delete;

  double flops() const { return total(); }

 private:
  static double& total() {
    static thread_local double flops = 0;
    return flops;
  }
  static std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
    const std::string name = fn.name();
    const auto inputs = fn.inputs();
    auto sizes = [&](size_t i) { return inputs[i].toTensor().sizes(); };
    if (name == "aten::mm") {  // [m, k] x [k, n]
      total() += 2.0 * sizes(0)[0] * sizes(0)[1] * sizes(1)[1];
    } else if (name == "aten::addmm") {  // bias + [m, k] x [k, n]
      total() += 2.0 * sizes(1)[0] * sizes(1)[1] * sizes(2)[1];
    } else if (name == "aten::bmm") {  // [g, m, k] x [g, k, n]
      total() += 2.0 * sizes(0)[0] * sizes(0)[1] * sizes(0)[2] * sizes(1)[2];
    } else if (name == "aten::baddbmm") {
      total() += 2.0 * sizes(1)[0] * sizes(1)[1] * sizes(1)[2] * sizes(2)[2];
    } else if (name == "aten::mv") {  // [m, k] x [k]
      total() += 2.0 * sizes(0)[0] * sizes(0)[1];
    } else if (name == "aten::addmv") {
      total() += 2.0 * sizes(1)[0] * sizes(1)[1];
    } else if (name == "aten::dot") {
      total() += 2.0 * sizes(0)[0];
    }
    return nullptr;
  }
  at::CallbackHandle handle_;
};

class LargestCpuAllocation {
 public:
  LargestCpuAllocation() : inner_(c10::GetCPUAllocator()), recorder_(inner_) {
    c10::SetCPUAllocator(&recorder_, kPriority);
  }
  ~LargestCpuAllocation() { c10::SetCPUAllocator(inner_, kPriority); }
  LargestCpuAllocation(const LargestCpuAllocation&) = delete;
  LargestCpuAllocation& operator=(const LargestCpuAllocation&) = delete;

  size_t largest_bytes() const { return recorder_.largest.load(); }

 private:
  static constexpr uint8_t kPriority = 100;  // above the default allocator's registration
  struct Recorder : c10::Allocator {
    explicit Recorder(c10::Allocator* inner) : inner(inner) {}
    // LibTorch 1.13 declares allocate() const, 2.x non-const: defining both overrides
    // whichever the base has (the other is a plain member), so no `override` keywords here.
    c10::DataPtr allocate(size_t n) const {
      size_t seen = largest.load();
      while (n > seen && !largest.compare_exchange_weak(seen, n)) {
      }
      return inner->allocate(n);
    }
    c10::DataPtr allocate(size_t n) { return static_cast<const Recorder*>(this)->allocate(n); }
    c10::DeleterFnPtr raw_deleter() const { return inner->raw_deleter(); }
    // Pure virtual in LibTorch 2.x, absent in 1.13.
    void copy_data(void* dest, const void* src, std::size_t count) const {
      std::memcpy(dest, src, count);
    }
    c10::Allocator* inner;
    mutable std::atomic<size_t> largest{0};
  };
  c10::Allocator* inner_;
  Recorder recorder_;
};

}  // namespace mixlab::testing
