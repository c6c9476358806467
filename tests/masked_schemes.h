#pragma once
// The attention schemes whose output is full softmax attention under a fixed mask M[t, j] ("query
// t may attend to key j"), as the typed suite tests/test_masked_attention.cpp sees them: the mask,
// the registry entry, the blockwise core (where the scheme has one), what its decode state keeps,
// and the sizes each shared test sweeps (the sizes, seeds and bounds of the per-scheme tests these
// replaced).  The schemes themselves: docs/design.md.

#include "attention/checkpoint_attention.h"
#include "attention/swa.h"
#include "core/registry.h"
#include "tests/attention_reference.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

namespace mixlab::testing {

using SchemeParams = std::map<std::string, ParamValue>;

// Sliding window W (`swa`):  M[t, j] = (t - W < j ≤ t).
struct SlidingWindowScheme {
  static constexpr const char* kName = "swa";
  static constexpr const char* kSizeParam = "window";  // W
  static constexpr uint64_t kSeedBase = 0;             // the tests use seeds kSeedBase + 1 ... + 8

  static bool allows(int64_t t, int64_t j, int64_t window) { return j >= t - window + 1 && j <= t; }
  static SchemeParams params(int64_t window, int64_t query_block) {
    return {{"window", window}, {"query_block", query_block}};
  }
  static torch::Tensor core(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            int64_t window, int64_t query_block) {
    return sliding_window_attention(q, k, v, window, query_block);
  }
  // The decode state after n tokens: keys and values of the last min(n, W) tokens.
  static constexpr const char* kCachedKeys = "key_cache";
  static int64_t cached_tokens(int64_t n, int64_t window) { return std::min(n, window); }

  static inline const std::vector<int64_t> kCoreSizes{1, 2, 5, 8, 16, 36, 37, 50};
  static inline const std::vector<int64_t> kMixerSizes{1, 3, 7, 16};  // none divides N = 37
  static inline const std::vector<int64_t> kDecodeSizes{1, 5, 64};
  static constexpr int64_t kGradientSize = 5;
  static inline const std::vector<int64_t> kCostLengths{1, 7, 37, 100};
  static inline const std::vector<int64_t> kCostSizes{1, 5, 37, 1024};
  static inline const std::vector<int64_t> kMatmulSizes{1, 4, 16, 1024};

  // N = 4096, W = 128: the forward's largest buffer is the block scores, H·nb·b·(W+b-1) entries
  // (batch 1), far below one head's N×N (at most a quarter of it).
  static constexpr int64_t kLongSize = 128;
  static constexpr int64_t kNxNFraction = 4;
  static size_t largest_buffer_bound(int64_t n, int64_t window, const MixerContext& context) {
    const auto plan = plan_sliding_window(n, window);
    EXPECT_LE(plan.score_entries(), (n + plan.query_block) * (window + plan.query_block));
    return static_cast<size_t>(context.n_heads * plan.score_entries()) * sizeof(double);
  }
};

// SCOUT checkpoints, segment size S (`checkpoint_attention`):  M[t, j] = (j = t) or
// (j mod S = S-1 and j < t).
struct CheckpointScheme {
  static constexpr const char* kName = "checkpoint_attention";
  static constexpr const char* kSizeParam = "segment_size";  // S
  static constexpr uint64_t kSeedBase = 10;                  // seeds 11 ... 18

  static bool allows(int64_t t, int64_t j, int64_t s) { return j == t || (j % s == s - 1 && j < t); }
  static SchemeParams params(int64_t segment_size, int64_t query_block) {
    return {{"segment_size", segment_size}, {"query_block", query_block}};
  }
  static torch::Tensor core(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            int64_t segment_size, int64_t query_block) {
    return checkpoint_attention(q, k, v, segment_size, query_block);
  }
  // The decode state after n tokens: keys and values of the ⌊n/S⌋ completed checkpoints.
  static constexpr const char* kCachedKeys = "checkpoint_keys";
  static int64_t cached_tokens(int64_t n, int64_t s) { return n / s; }

  static inline const std::vector<int64_t> kCoreSizes{1, 2, 3, 10, 36, 37, 50};
  static inline const std::vector<int64_t> kMixerSizes{1, 4, 10, 64};
  static inline const std::vector<int64_t> kDecodeSizes{1, 3, 10, 50};
  static constexpr int64_t kGradientSize = 3;
  static inline const std::vector<int64_t> kCostLengths{1, 9, 10, 11, 37, 100};
  static inline const std::vector<int64_t> kCostSizes{1, 3, 10, 200};
  static inline const std::vector<int64_t> kMatmulSizes{1, 4, 10, 50};

  // N = 4096, S = 10: the largest buffer is one block's logits, H·b·(1 + ⌊(N-1)/S⌋) entries
  // (batch 1), or the [1, N, 3d] product q | k | v (attention/multi_head.cpp); one head's N×N
  // would be 32× the former.
  static constexpr int64_t kLongSize = 10;
  static constexpr int64_t kNxNFraction = 8;
  static size_t largest_buffer_bound(int64_t n, int64_t s, const MixerContext& context) {
    const auto plan = plan_checkpoint_attention(n, s);
    const size_t block_logits = static_cast<size_t>(context.n_heads * plan.query_block * (1 + (n - 1) / s));
    const size_t qkv = static_cast<size_t>(n * 3 * context.d_model);
    return std::max(block_logits, qkv) * sizeof(double);
  }
};

// Full causal attention (`attention`):  M[t, j] = (j ≤ t).  No size and no blockwise core of
// its own (LibTorch's), so it takes part in the mixer-level tests only.
struct CausalScheme {
  static constexpr const char* kName = "attention";
  static constexpr uint64_t kSeedBase = 20;

  static bool allows(int64_t t, int64_t j, int64_t) { return j <= t; }
  static SchemeParams params(int64_t, int64_t) { return {}; }
  // The decode state after n tokens: every key and value.
  static constexpr const char* kCachedKeys = "key_cache";
  static int64_t cached_tokens(int64_t n, int64_t) { return n; }

  static inline const std::vector<int64_t> kMixerSizes{0};  // the size is not used
  static inline const std::vector<int64_t> kDecodeSizes{0};
  static constexpr int64_t kGradientSize = 0;
  static inline const std::vector<int64_t> kCostLengths{1, 7, 37, 100};
  static inline const std::vector<int64_t> kCostSizes{0};
};

// The dense [N, N] mask of a scheme at size `size`.
template <class Scheme>
torch::Tensor scheme_mask(int64_t n, int64_t size) {
  return dense_mask(n, [&](int64_t t, int64_t j) { return Scheme::allows(t, j, size); });
}

// The scheme's registry entry in float64 (weights from the generator as it stands).
template <class Scheme>
TokenMixerPtr make_scheme(int64_t size, const MixerContext& context, int64_t query_block = 0) {
  return make_float64(Scheme::kName, context, Scheme::params(size, query_block));
}

}  // namespace mixlab::testing
