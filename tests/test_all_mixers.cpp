// The registry-wide contract, run for every entry present now or added later:
// output shape, causality, finite gradients reaching every parameter, step() decoding equal to
// forward(), cost() positive and growing with N, cost().matmul_flops equal to the matrix-product
// work the forward actually issues, and the decode state equal to cost().state_bytes.

#include "harness/flop_counter.h"
#include "core/registry.h"
#include "tests/mixer_test_helpers.h"

#include <gtest/gtest.h>

#include <set>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

constexpr int64_t kBatch = 2, kSeq = 13, kModel = 16, kHeads = 2;

// Entries whose decode state legitimately differs from the analytic figure, with the reason.
const std::map<std::string, std::string> kStateExemptions = {
    {"dtrnet", "its KV cache holds the routed tokens only, a data-dependent count"},
    {"learned_topk", "state depends on the selected keys"},
};

class EveryMixer : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    torch::manual_seed(1234);
    mixer_ = Registry::global().create(GetParam(), MixerContext{kModel, kHeads, 0, 1, 0.2});
    mixer_->to(torch::kFloat64);
    mixer_->eval();
  }
  torch::Tensor input(int64_t seq = kSeq) {
    return torch::randn({kBatch, seq, kModel}, torch::kFloat64);
  }
  TokenMixerPtr mixer_;
};

TEST_P(EveryMixer, KeepsTheShape) {
  auto x = input();
  auto y = mixer_->forward(x);
  EXPECT_EQ(y.sizes(), x.sizes());
  EXPECT_EQ(y.scalar_type(), torch::kFloat64);
  EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
}

TEST_P(EveryMixer, IsCausal) {
  torch::NoGradGuard no_grad;
  auto x = input();
  auto y = mixer_->forward(x);
  for (int64_t t : std::vector<int64_t>{0, 4, 9, kSeq - 2}) {
    auto perturbed = x.clone();
    perturbed.narrow(1, t + 1, kSeq - t - 1).add_(torch::randn({kBatch, kSeq - t - 1, kModel}, torch::kFloat64));
    auto y2 = mixer_->forward(perturbed);
    auto before = y.narrow(1, 0, t + 1), after = y2.narrow(1, 0, t + 1);
    EXPECT_TRUE(torch::allclose(before, after, 1e-10, 1e-10))
        << GetParam() << ": outputs up to t=" << t << " changed when later inputs changed; max diff "
        << (before - after).abs().max().item<double>();
  }
}

TEST_P(EveryMixer, GradientsReachEveryParameter) {
  mixer_->train();
  auto x = input().requires_grad_(true);
  auto y = mixer_->forward(x);
  auto loss = (y * torch::randn_like(y)).sum();
  auto aux = mixer_->auxiliary_loss();
  if (aux.defined()) loss = loss + aux;
  loss.backward();
  EXPECT_TRUE(x.grad().defined() && torch::isfinite(x.grad()).all().item<bool>());
  for (const auto& item : mixer_->named_parameters()) {
    if (!item.value().requires_grad()) continue;
    ASSERT_TRUE(item.value().grad().defined()) << GetParam() << ": no gradient reaches " << item.key();
    EXPECT_TRUE(torch::isfinite(item.value().grad()).all().item<bool>()) << item.key();
  }
}

TEST_P(EveryMixer, StepDecodingEqualsForward) {
  if (!mixer_->has_step()) GTEST_SKIP() << GetParam() << " has no step(); decode re-runs the prefix";
  torch::NoGradGuard no_grad;
  auto x = input();
  auto y = mixer_->forward(x);
  auto state = mixer_->initial_state(kBatch, x.options());
  auto decoded = testing::decode_all(*mixer_, x, state);
  EXPECT_TRUE(torch::allclose(decoded, y, 1e-9, 1e-9))
      << GetParam() << ": max |step - forward| = " << (decoded - y).abs().max().item<double>();
  EXPECT_EQ(state.position, kSeq);
  if (!kStateExemptions.count(GetParam())) {
    const Cost cost = mixer_->cost(CostShape{kBatch, kSeq, 8});
    EXPECT_DOUBLE_EQ(static_cast<double>(state.bytes()), cost.state_bytes)
        << GetParam() << ": the decode state held differs from cost().state_bytes";
  }
}

TEST_P(EveryMixer, CostIsPositiveAndGrowsWithLength) {
  double previous = 0;
  for (int64_t n : {16, 64, 256, 1024}) {
    const Cost cost = mixer_->cost(CostShape{1, n, 4});
    EXPECT_GE(cost.flops, 0) << n;
    EXPECT_GE(cost.matmul_flops, 0) << n;
    EXPECT_GE(cost.state_bytes, 0) << n;
    if (GetParam() != "identity") {
      EXPECT_GT(cost.flops, previous) << GetParam() << " at N=" << n;
    }
    previous = cost.flops;
  }
}

TEST_P(EveryMixer, MatmulFlopsMatchTheWorkTheForwardIssues) {
  torch::NoGradGuard no_grad;
  for (int64_t n : std::vector<int64_t>{kSeq, 37}) {
    auto x = input(n);
    FlopCounter counter;
    mixer_->forward(x);
    const double analytic = mixer_->cost(CostShape{kBatch, n, 8}).matmul_flops;
    EXPECT_NEAR(counter.matmul_flops(), analytic, 1e-9 * std::max(1.0, analytic))
        << GetParam() << " at N=" << n << ": counted " << counter.matmul_flops() << ", cost() says " << analytic;
  }
}

std::vector<std::string> all_entries() { return Registry::global().names(); }

INSTANTIATE_TEST_SUITE_P(Registry, EveryMixer, ::testing::ValuesIn(all_entries()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace mixlab
