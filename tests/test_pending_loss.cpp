// A step's loss copied to the host without waiting (harness/pending_loss.h): the value read is
// the loss's value where it was queued, whatever runs on the device afterwards; and the
// trainer's queued steps give the losses of its synchronous steps.

#include "harness/config.h"
#include "harness/pending_loss.h"
#include "harness/trainer.h"

#include <gtest/gtest.h>

using namespace mixlab;

namespace MIXLAB_UNITY_ID {

void expect_keeps_its_value(const torch::Device& device) {
  auto loss = torch::full({}, 2.75, torch::TensorOptions().dtype(torch::kFloat32).device(device));
  PendingLoss pending(loss);
  loss.fill_(-1.0);  // queued after the copy: must not reach the value read
  EXPECT_DOUBLE_EQ(pending.value(), 2.75);
  EXPECT_DOUBLE_EQ(pending.value(), 2.75) << "read twice";
}

data::Batch batch_for(int64_t seed) {
  torch::manual_seed(seed);
  auto tokens = torch::randint(0, 64, {3, 17}, torch::kInt64);
  auto targets = tokens.narrow(1, 1, 16).clone();
  targets.narrow(1, 0, 10).fill_(data::kIgnore);  // the last 6 positions are asked
  return {tokens.narrow(1, 0, 16).contiguous(), targets, targets.ne(data::kIgnore)};
}

std::unique_ptr<Trainer> small_trainer() {
  torch::manual_seed(9);
  TrainConfig c;
  c.precision = "float32";
  c.lr = 1e-2;
  return std::make_unique<Trainer>(
      LanguageModel(parse_model_config({{"vocab_size", 64}, {"d_model", 16}, {"n_heads", 2}, {"n_layers", 1},
                                        {"pattern", json::array({"attention", "mlp"})}},
                                       "test")),
      c, torch::kCPU, 4);
}


TEST(PendingLoss, KeepsTheValueItHadWhenQueuedOnTheCpu) { expect_keeps_its_value(torch::kCPU); }

TEST(PendingLoss, KeepsTheValueItHadWhenQueuedOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  expect_keeps_its_value(torch::kCUDA);
}

TEST(PendingLoss, QueuedStepsReadLateEqualTheSynchronousSteps) {
  auto queued = small_trainer(), synchronous = small_trainer();
  std::vector<PendingLoss> pending;
  std::vector<double> expected;
  for (int64_t step = 1; step <= 4; ++step) {
    pending.push_back(queued->queue({batch_for(step)}, step));
    expected.push_back(synchronous->step({batch_for(step)}, step));
  }
  for (size_t i = 0; i < pending.size(); ++i) EXPECT_DOUBLE_EQ(pending[i].value(), expected[i]) << "step " << i + 1;
  EXPECT_NE(expected.back(), expected.front()) << "the losses are not one repeated value";
}

}  // namespace
