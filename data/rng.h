#pragma once
// Deterministic random numbers for data: the same seed gives the same bytes on every platform
// and standard library (std::*_distribution output is implementation-defined, so it is not used).
//
//   SplitMix64 (Steele, Lea, Flood 2014):  s ← s + γ,  z = mix(s)
//       γ = 0x9E3779B97F4A7C15,  mix(z) = z ⊕ (z≫31) after two xor-shift-multiply rounds.
//   below(n): uniform on [0, n) by rejection of the top partial block of 2^64 (no modulo bias).
//   unit():   uniform on [0, 1) from the top 53 bits.
//
// Every example is generated from its own stream, seeded by mix_seed(base, task, split, index),
// so examples can be made in any order and the splits never share a stream.

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace mixlab::data {

inline uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t next() { return splitmix64_mix(state_ += 0x9E3779B97F4A7C15ull); }

  // Uniform integer in [0, n), n ≥ 1.
  uint64_t below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;  // largest multiple of n (or 2^64 - n·k)
    uint64_t x;
    do x = next(); while (x >= limit);
    return x % n;
  }
  int64_t between(int64_t lo, int64_t hi) {  // uniform in [lo, hi)
    return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo)));
  }
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  // Fisher–Yates: the first k entries of `items` become a uniform k-subset in uniform order.
  template <typename T>
  void partial_shuffle(std::vector<T>& items, size_t k) {
    for (size_t i = 0; i < k && i + 1 < items.size(); ++i)
      std::swap(items[i], items[i + static_cast<size_t>(below(items.size() - i))]);
  }

 private:
  uint64_t state_;
};

// One seed from a tuple: fold each part through the SplitMix64 finaliser.
inline uint64_t mix_seed(std::initializer_list<uint64_t> parts) {
  uint64_t h = 0x6A09E667F3BCC908ull;
  for (uint64_t part : parts) h = splitmix64_mix(h ^ splitmix64_mix(part + 0x9E3779B97F4A7C15ull));
  return h;
}

// FNV-1a, 64 bit: a stable hash of a name (document split, task ids).
inline uint64_t fnv1a64(const std::string& text) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : text) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

}  // namespace mixlab::data
