// A decode step's fused RoPE and cache write, rope_into_cache (attention/kv_cache.h):
//   q' = RoPE(q, t) (returned);   keys[:, :, m] ← RoPE(k, t);   values[:, :, m] ← v
// for the three static steps' slots m: t (attention), t mod W (swa), ⌊t/S⌋ (checkpoint_attention).
// On the CPU its reference against the rotate-half equation written here from the angles, in
// float64; on CUDA its kernel (attention/cuda/rope_into_cache.cu) against that reference, float32 and
// bf16, head dims 64 and 128.  Both check that every other cache slot is left as it was.  The
// static steps that call it are compared with step() in tests/test_static_decode.cpp.

#include "attention/kv_cache.h"
#include "attention/rope.h"
#include "core/implementation.h"
#include "tests/gpu_test.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#ifdef MIXLAB_WITH_CUDA
#include "attention/cuda/kernels.h"
#endif

namespace mixlab {
namespace MIXLAB_UNITY_ID {

constexpr double kTheta = 1e4;
constexpr int64_t kCapacity = 300, kWindow = 32, kSegment = 10;

// Which slot a static step writes at position t, and how many slots its cache has.
struct SlotRule {
  std::string name;
  int64_t slots;
  std::function<int64_t(int64_t)> slot_of;
};

std::vector<SlotRule> slot_rules() {
  return {{"attention", kCapacity, [](int64_t t) { return t; }},
          {"swa", kWindow, [](int64_t t) { return t % kWindow; }},
          {"checkpoint", (kCapacity + kSegment - 1) / kSegment, [](int64_t t) { return t / kSegment; }}};
}

torch::Tensor device_index(int64_t value, const torch::Device& device) {
  return torch::full({1}, value, torch::TensorOptions().dtype(torch::kLong).device(device));
}

// The inputs of one step: qkv [B, 3, H, 1, d_h] as the stacked projection's output, the tables of
// positions 0 .. kCapacity−1 and two caches of random (not zero) slots, so a stray write shows.
struct StepInputs {
  torch::Tensor qkv, cos, sin, keys, values;
};

StepInputs random_inputs(int64_t batch, int64_t heads, int64_t head_dim, int64_t slots,
                         const torch::TensorOptions& options) {
  StepInputs in;
  in.qkv = torch::randn({batch, 3 * heads * head_dim}, options).view({batch, 3, heads, 1, head_dim});
  const auto positions = torch::arange(kCapacity, torch::TensorOptions().dtype(torch::kLong).device(options.device()));
  std::tie(in.cos, in.sin) = rope_tables(positions, head_dim, kTheta, options);
  in.keys = torch::randn({batch, heads, slots, head_dim}, options);
  in.values = torch::randn({batch, heads, slots, head_dim}, options);
  return in;
}

// RoPE(x, t) from the equation, in float64: per pair i < d_h/2 at angle a = t·θ^(−2i/d_h),
//   y_i = x_i cos a − x_{i+d_h/2} sin a,   y_{i+d_h/2} = x_{i+d_h/2} cos a + x_i sin a.
// x: [..., d_h].
torch::Tensor rotated_at(const torch::Tensor& x, int64_t t) {
  const int64_t half = x.size(-1) / 2;
  auto y = torch::empty_like(x);
  for (int64_t i = 0; i < half; ++i) {
    const double angle = static_cast<double>(t) * std::pow(kTheta, -2.0 * static_cast<double>(i) / (2 * half));
    const auto a = x.select(-1, i), b = x.select(-1, i + half);
    y.select(-1, i).copy_(a * std::cos(angle) - b * std::sin(angle));
    y.select(-1, i + half).copy_(b * std::cos(angle) + a * std::sin(angle));
  }
  return y;
}

// `before` with slot m of every (b, h) replaced by `row` ([B, H, 1, d_h]).
torch::Tensor with_slot(const torch::Tensor& before, int64_t m, const torch::Tensor& row) {
  auto after = before.clone();
  after.narrow(2, m, 1).copy_(row);
  return after;
}

// On the CPU the dispatch runs the reference: q and the written slot as the equation says, every
// other slot untouched, for positions at both ends of the tables and slots of the three rules.
TEST(RopeIntoCache, ReferenceIsTheRotateHalfEquationAndWritesOnlyItsSlot) {
  const auto options = torch::TensorOptions().dtype(torch::kFloat64);
  for (const auto& rule : slot_rules()) {
    for (const int64_t t : {int64_t{0}, int64_t{1}, int64_t{37}, kCapacity - 1}) {
      torch::manual_seed(t + rule.slots);
      auto in = random_inputs(3, 4, 8, rule.slots, options);
      const auto keys_before = in.keys.clone(), values_before = in.values.clone();
      const int64_t m = rule.slot_of(t);
      ImplementationLog log;
      const auto q = rope_into_cache(in.qkv, device_index(t, torch::kCPU), in.cos, in.sin,
                                     device_index(m, torch::kCPU), in.keys, in.values);
      EXPECT_EQ(log.summary(), "apply_rope=reference, rope_into_cache=reference");
      const std::string where = rule.name + " t " + std::to_string(t);
      ASSERT_EQ(q.sizes(), (std::vector<int64_t>{3, 4, 1, 8})) << where;
      EXPECT_TRUE(torch::allclose(q, rotated_at(in.qkv.select(1, 0), t), 1e-12, 1e-12)) << where;
      const auto keys_want = with_slot(keys_before, m, rotated_at(in.qkv.select(1, 1), t));
      EXPECT_TRUE(torch::allclose(in.keys, keys_want, 1e-12, 1e-12)) << where;
      EXPECT_TRUE(torch::equal(in.values, with_slot(values_before, m, in.qkv.select(1, 2)))) << where;
    }
  }
}

// ------------------------------------------------------------------------------ the kernel

#ifdef MIXLAB_WITH_CUDA

// max |got − want| / max |want| over the whole tensor.
double relative_gap(const torch::Tensor& got, const torch::Tensor& want) {
  const auto g = got.cpu().to(torch::kDouble), w = want.cpu().to(torch::kDouble);
  return (g - w).abs().max().item<double>() / w.abs().max().item<double>();
}

// Every slot of `after` but m equals `before`'s bit for bit.
bool other_slots_equal(const torch::Tensor& after, const torch::Tensor& before, int64_t m) {
  const auto a = after.cpu(), b = before.cpu();
  const int64_t slots = a.size(2);
  return torch::equal(a.narrow(2, 0, m), b.narrow(2, 0, m)) &&
         torch::equal(a.narrow(2, m + 1, slots - m - 1), b.narrow(2, m + 1, slots - m - 1));
}

struct KernelCase {
  torch::ScalarType dtype;
  int64_t head_dim;
  const SlotRule& rule;
  int64_t t;
  bool misaligned;  // qkv one element off a 16-byte boundary: the kernel's one-pair-per-thread path
};

// The kernel's q and caches against the reference run on the CPU in float32 on the same (rounded)
// inputs and rounded once to the dtype, as the kernel rounds: float32 agrees bit for bit up to
// the tolerance's slack, bf16 to one unit in the last place of the largest value.
void check_kernel(const KernelCase& c) {
  constexpr int64_t kBatch = 3, kHeads = 4;
  const auto cuda = torch::TensorOptions().device(torch::kCUDA).dtype(c.dtype);
  torch::manual_seed(c.t + c.head_dim);
  auto in = random_inputs(kBatch, kHeads, c.head_dim, c.rule.slots, cuda);
  if (c.misaligned) {
    const auto padded = torch::randn({in.qkv.numel() + 1}, cuda);
    in.qkv = padded.narrow(0, 1, in.qkv.numel()).view(in.qkv.sizes());
  }
  const auto keys_before = in.keys.clone(), values_before = in.values.clone();
  const int64_t m = c.rule.slot_of(c.t);
  auto f32 = [](const torch::Tensor& x) { return x.to(torch::kCPU, torch::kFloat32); };
  auto keys_want = f32(in.keys), values_want = f32(in.values);
  const auto q_want = rope_into_cache(f32(in.qkv), device_index(c.t, torch::kCPU), f32(in.cos), f32(in.sin),
                                      device_index(m, torch::kCPU), keys_want, values_want);
  torch::NoGradGuard no_grad;
  const auto position = device_index(c.t, torch::kCUDA), slot = device_index(m, torch::kCUDA);
  ASSERT_TRUE(cuda::rope_into_cache_supported(in.qkv, position, in.cos, in.sin, slot, in.keys, in.values));
  ImplementationLog log;
  const auto q = rope_into_cache(in.qkv, position, in.cos, in.sin, slot, in.keys, in.values);
  EXPECT_EQ(log.summary(), "rope_into_cache=kernel");
  const std::string where = std::string(c10::toString(c.dtype)) + " d_h " + std::to_string(c.head_dim) + " " +
                            c.rule.name + " t " + std::to_string(c.t) + (c.misaligned ? " misaligned" : "");
  ASSERT_EQ(q.sizes(), (std::vector<int64_t>{kBatch, kHeads, 1, c.head_dim})) << where;
  EXPECT_EQ(q.scalar_type(), c.dtype) << where;
  const double tol = c.dtype == torch::kFloat32 ? 1e-6 : 1.0 / 128;
  EXPECT_LE(relative_gap(q, q_want.to(c.dtype)), tol) << where;
  EXPECT_LE(relative_gap(in.keys, keys_want.to(c.dtype)), tol) << where;
  EXPECT_TRUE(torch::equal(in.values.cpu(), values_want.to(c.dtype))) << where;
  EXPECT_TRUE(other_slots_equal(in.keys, keys_before, m)) << where;
  EXPECT_TRUE(other_slots_equal(in.values, values_before, m)) << where;
}

#endif

// The kernel against the reference for float32 and bf16, head dims 64 and 128, the three slot
// rules, positions at the start, inside and at the end of the tables (windows wrapped, segments
// closed), batch 3 and 4 heads; one misaligned qkv per dtype, and fp16 once.
TEST(RopeIntoCache, KernelEqualsTheReference) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  const auto rules = slot_rules();
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16})
    for (const int64_t head_dim : {64, 128})
      for (const auto& rule : rules)
        for (const int64_t t : {int64_t{0}, int64_t{1}, int64_t{31}, int64_t{37}, int64_t{250}, kCapacity - 1})
          check_kernel({dtype, head_dim, rule, t, false});
  check_kernel({torch::kFloat32, 64, rules[1], 45, true});
  check_kernel({torch::kBFloat16, 128, rules[2], 123, true});
  check_kernel({torch::kHalf, 64, rules[0], 77, false});
#endif
}

// What the kernel does not take (float64; a gradient asked) runs the reference, and the binding
// called directly refuses it, naming the dispatch.
TEST(RopeIntoCache, DispatchRunsTheReferenceForWhatTheKernelDoesNotTake) {
  MIXLAB_REQUIRE_GPU();
#ifdef MIXLAB_WITH_CUDA
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  auto in = random_inputs(2, 2, 64, kWindow, cuda.dtype(torch::kFloat64));
  const auto position = device_index(40, torch::kCUDA), slot = device_index(40 % kWindow, torch::kCUDA);
  EXPECT_FALSE(cuda::rope_into_cache_supported(in.qkv, position, in.cos, in.sin, slot, in.keys, in.values));
  ImplementationLog log;
  rope_into_cache(in.qkv, position, in.cos, in.sin, slot, in.keys, in.values);
  EXPECT_EQ(log.summary(), "apply_rope=reference, rope_into_cache=reference");
  auto f = random_inputs(2, 2, 64, kWindow, cuda.dtype(torch::kFloat32));
  EXPECT_TRUE(cuda::rope_into_cache_supported(f.qkv, position, f.cos, f.sin, slot, f.keys, f.values));
  f.qkv = f.qkv.detach().clone().requires_grad_(true);  // under grad mode, as in training
  EXPECT_FALSE(cuda::rope_into_cache_supported(f.qkv, position, f.cos, f.sin, slot, f.keys, f.values));
  try {
    cuda::rope_into_cache(in.qkv, position, in.cos, in.sin, slot, in.keys, in.values);
    ADD_FAILURE() << "float64 reached the kernel";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what()).find("mixlab::rope_into_cache"), std::string::npos) << error.what();
  }
#endif
}

}  // namespace MIXLAB_UNITY_ID
}  // namespace mixlab
