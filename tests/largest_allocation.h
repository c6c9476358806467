#pragma once
// A test-only probe of memory: LargestCpuAllocation records the largest single CPU allocation
// made while it lives, by wrapping the CPU allocator, so that a test can assert that a forward
// never built an N×N buffer.  Scoped (RAII); restores the previous allocator on destruction.

#include <c10/core/CPUAllocator.h>
#include <torch/torch.h>

#include <atomic>
#include <cstring>

namespace mixlab::testing {

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
