// attention/kv_cache.h: the in-place decode caches against concatenation (the reference they
// replace), the ring of a sliding window against the last W keys, and the cases where writing in
// place would be wrong (a copied state, autograd).

#include "attention/kv_cache.h"

#include <gtest/gtest.h>

#include <vector>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

// x_t of step t: [B=2, H=3, 1, d=4], its first feature the position t (an id for the checks).
torch::Tensor token(int64_t t) {
  auto x = torch::randn({2, 3, 1, 4}, torch::kFloat64);
  x.select(3, 0).fill_(static_cast<double>(t));
  return x;
}

TEST(KvCache, AppendEqualsConcatenationAndReusesItsBuffer) {
  torch::manual_seed(1);
  torch::Tensor cache = torch::zeros({2, 3, 0, 4}, torch::kFloat64), reference = cache.clone();
  int reallocations = 0;
  for (int64_t t = 0; t < 70; ++t) {
    const auto x = token(t);
    const void* before = cache.numel() ? cache.data_ptr() : nullptr;
    cache = append_to_cache(cache, x);
    reference = torch::cat({reference, x}, 2);
    ASSERT_TRUE(torch::equal(cache, reference)) << "step " << t;
    if (cache.data_ptr() != before) ++reallocations;
  }
  EXPECT_EQ(cache.size(2), 70);
  EXPECT_EQ(reallocations, 4) << "capacity 16, 32, 64, 128: the buffer moves only when full";
  const auto three = torch::cat({token(70), token(71), token(72)}, 2);  // several slots at once
  cache = append_to_cache(cache, three);
  EXPECT_TRUE(torch::equal(cache, torch::cat({reference, three}, 2)));
}

TEST(KvCache, ACopiedStateNeverSeesTheOthersWrites) {
  torch::manual_seed(2);
  torch::Tensor a = torch::zeros({2, 3, 0, 4}, torch::kFloat64);
  for (int64_t t = 0; t < 5; ++t) a = append_to_cache(a, token(t));
  torch::Tensor b = a;  // a second state holding the same buffer
  const auto b_before = b.clone();
  const auto xa = token(100), xb = token(200);
  a = append_to_cache(a, xa);
  b = append_to_cache(b, xb);
  EXPECT_TRUE(torch::equal(a.narrow(2, 5, 1), xa));
  EXPECT_TRUE(torch::equal(b.narrow(2, 5, 1), xb));
  EXPECT_TRUE(torch::equal(a.narrow(2, 0, 5), b_before));
  EXPECT_TRUE(torch::equal(b.narrow(2, 0, 5), b_before));
}

TEST(KvCache, WindowHoldsExactlyTheLastWKeys) {
  torch::manual_seed(3);
  for (int64_t window : {1, 5, 16, 40}) {
    torch::Tensor ring = torch::zeros({2, 3, 0, 4}, torch::kFloat64);
    std::vector<torch::Tensor> all;
    for (int64_t t = 0; t < 90; ++t) {
      all.push_back(token(t));
      ring = append_to_window(ring, all.back(), t, window);
      const int64_t kept = std::min<int64_t>(t + 1, window);
      ASSERT_EQ(ring.size(2), kept) << "W " << window << " step " << t;
      // Every kept key is one of the last W, each exactly once: sort the slots by their id.
      const auto ids = ring.select(3, 0).select(1, 0).select(0, 0);  // [kept]
      const auto order = std::get<1>(ids.sort());
      for (int64_t i = 0; i < kept; ++i) {
        const int64_t position = t - kept + 1 + i;
        ASSERT_TRUE(torch::equal(ring.index_select(2, order.narrow(0, i, 1)), all[position]))
            << "W " << window << " step " << t << " slot of position " << position;
      }
    }
  }
}

TEST(KvCache, UnderAutogradTheCacheIsNotWrittenInPlace) {
  torch::manual_seed(4);
  auto w = torch::full({1}, 1.5, torch::kFloat64).requires_grad_(true);
  torch::Tensor cache = torch::zeros({2, 3, 0, 4}, torch::kFloat64);
  torch::Tensor loss = torch::zeros({}, torch::kFloat64);
  double expected = 0, prefix = 0;  // dL/dw = 2w Σ_t Σ_{s≤t} ‖x_s‖²
  for (int64_t t = 0; t < 6; ++t) {
    const auto x = token(t);
    prefix += x.pow(2).sum().item<double>();
    expected += 2 * 1.5 * prefix;
    cache = append_to_cache(cache, x * w);
    loss = loss + cache.pow(2).sum();  // pow saves each step's view for the backward
  }
  loss.backward();  // fails ("modified by an inplace operation") had a saved view been overwritten
  EXPECT_NEAR(w.grad().item<double>(), expected, 1e-9 * expected);
}

}  // namespace
}  // namespace mixlab
