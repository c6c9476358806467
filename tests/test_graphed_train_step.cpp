// The training step as CUDA graphs (harness/graphed_train_step.h) against the eager step, its
// reference: the same model, batches and schedule give the same losses and weights.  The CUDA
// tests skip without a GPU; the CPU ones check the fallback and the configuration.

#include "harness/config.h"
#include "harness/graphed_train_step.h"
#include "harness/train_config.h"
#include "harness/trainer.h"

#include <gtest/gtest.h>

using namespace mixlab;

namespace MIXLAB_UNITY_ID {

json small_model() {
  return {{"vocab_size", 64}, {"d_model", 32}, {"n_heads", 2}, {"n_layers", 2},
          {"pattern", json::array({"attention", "mlp"})}};
}

// A batch whose targets are kept at `asked` positions per row (the rest data::kIgnore), as a
// synthetic task's are; `seed` picks the tokens.
data::Batch masked_batch(int64_t seed, int64_t asked, int64_t rows = 4, int64_t length = 24) {
  torch::manual_seed(seed);
  auto tokens = torch::randint(0, 64, {rows, length + 1}, torch::kInt64);
  auto targets = tokens.narrow(1, 1, length).clone();
  auto keep = torch::zeros({rows, length}, torch::kBool);
  keep.narrow(1, length - asked, asked).fill_(true);  // the last `asked` positions of every row
  targets.masked_fill_(keep.logical_not(), data::kIgnore);
  return {tokens.narrow(1, 0, length).contiguous(), targets, keep};
}

TrainConfig config_with(const std::string& execution) {
  TrainConfig c;
  c.execution = execution;
  c.precision = "float32";
  c.grad_accum = 2;
  c.lr = 3e-3;
  c.min_lr = 3e-4;
  c.warmup_steps = 2;
  return c;
}

std::unique_ptr<Trainer> trainer_with(const std::string& execution, torch::Device device, int64_t steps) {
  torch::manual_seed(5);
  return std::make_unique<Trainer>(LanguageModel(parse_model_config(small_model(), "test")), config_with(execution),
                                   device, steps);
}


TEST(GraphedTrainStep, OnTheCpuTheStepRunsEagerlyAndSaysWhy) {
  auto trainer = trainer_with("cuda_graph", torch::kCPU, 2);
  const double loss = trainer->step({masked_batch(1, 3), masked_batch(2, 3)}, 1);
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_EQ(trainer->execution(), "eager");
  EXPECT_EQ(trainer->why_not_graphed(), "the device is the CPU");
  auto eager = trainer_with("eager", torch::kCPU, 2);
  EXPECT_DOUBLE_EQ(eager->step({masked_batch(1, 3), masked_batch(2, 3)}, 1), loss);
  EXPECT_EQ(eager->why_not_graphed(), "");
  auto automatic = trainer_with("auto", torch::kCPU, 2);  // on the CPU: eager, silently
  EXPECT_DOUBLE_EQ(automatic->step({masked_batch(1, 3), masked_batch(2, 3)}, 1), loss);
  EXPECT_EQ(automatic->execution(), "eager");
  EXPECT_EQ(automatic->why_not_graphed(), "");
}

TEST(GraphedTrainStep, ExecutionIsParsedAndLeftOutOfTheRunsIdentity) {
  EXPECT_EQ(parse_train_config(json{{"steps", 1}, {"execution", "auto"}}, "spec.json").execution, "auto");
  EXPECT_EQ(parse_train_config(json{{"steps", 1}}, "spec.json").execution, "eager");
  try {
    parse_train_config(json{{"steps", 1}, {"execution", "graph"}}, "spec.json", "base.train");
    ADD_FAILURE() << "accepted execution 'graph'";
  } catch (const ConfigError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("base.train.execution"), std::string::npos) << message;
    EXPECT_NE(message.find("cuda_graph"), std::string::npos) << message;
  }
  const json with = {{"steps", 3}, {"execution", "cuda_graph"}}, without = {{"steps", 3}};
  EXPECT_EQ(training_identity(with), without);
  EXPECT_EQ(training_identity(without), without);
}

// The loss positions are found on the host; the loss equals cross entropy with ignore_index.
TEST(GraphedTrainStep, LossInputsKeepOnlyThePositionsWithATarget) {
  const auto batch = masked_batch(3, 5);
  const auto inputs = loss_inputs(batch);
  ASSERT_TRUE(inputs.rows.defined());
  EXPECT_EQ(inputs.rows.size(0), 4 * 5);
  EXPECT_TRUE(torch::equal(inputs.targets, batch.targets.reshape({-1}).index_select(0, inputs.rows)));
  EXPECT_EQ(inputs.shape(), (std::vector<int64_t>{4, 24, 20}));
  const auto all = loss_inputs(masked_batch(3, 24));
  EXPECT_FALSE(all.rows.defined()) << "every position has a target: no gather";
  EXPECT_EQ(all.shape(), (std::vector<int64_t>{4, 24, -1}));
}

// The host's one-pass search (harness/loss_inputs.cpp) against its definition by tensor ops, on
// random masks from all-asked to none asked.
TEST(GraphedTrainStep, LossInputsOnTheHostEqualTheTensorDefinition) {
  torch::manual_seed(3);
  for (double keep : {0.0, 0.05, 0.5, 0.97}) {
    const auto tokens = torch::randint(0, 50, {6, 40}, torch::kInt64);
    const auto targets = torch::where(torch::rand({6, 40}) < keep, tokens, torch::full_like(tokens, data::kIgnore));
    const data::Batch batch{tokens, targets, targets.ne(data::kIgnore)};
    const auto found = loss_inputs(batch);
    const auto flat = targets.reshape({-1});
    const auto expected_rows = flat.ne(data::kIgnore).nonzero().squeeze(1);
    ASSERT_TRUE(found.rows.defined()) << keep;
    EXPECT_TRUE(torch::equal(found.rows, expected_rows)) << keep;
    EXPECT_TRUE(torch::equal(found.targets, flat.index_select(0, expected_rows))) << keep;
    EXPECT_TRUE(torch::equal(found.inputs, tokens));
  }
}

TEST(GraphedTrainStep, ReplaysEqualTheEagerStepsOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  const int64_t steps = 6;
  auto graphed = trainer_with("cuda_graph", torch::kCUDA, steps);
  auto eager = trainer_with("eager", torch::kCUDA, steps);
  for (int64_t step = 1; step <= steps; ++step) {
    const std::vector<data::Batch> micro = {masked_batch(10 * step, 3), masked_batch(10 * step + 1, 3)};
    const double a = graphed->step(micro, step), b = eager->step(micro, step);
    EXPECT_EQ(graphed->execution(), "cuda_graph") << graphed->why_not_graphed();
    EXPECT_NEAR(a, b, 1e-5 * std::fabs(b)) << "step " << step;
  }
  auto a = graphed->model()->named_parameters(), b = eager->model()->named_parameters();
  for (const auto& item : a)
    EXPECT_TRUE(torch::allclose(item.value(), b[item.key()], 1e-4, 1e-6))
        << item.key() << ": " << (item.value() - b[item.key()]).abs().max().item<double>();
  EXPECT_EQ(graphed->optimizer().steps_taken(), steps) << "the capture's warm-up steps were undone";
}

// Steps queued back to back, their losses read only at the end (as the training loop reads
// them one step late): every replay overwrites the graph's loss buffer, so each PendingLoss
// must have kept its own step's value.
TEST(GraphedTrainStep, QueuedLossesReadLateEqualTheEagerSteps) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  const int64_t steps = 5;
  auto graphed = trainer_with("cuda_graph", torch::kCUDA, steps);
  auto eager = trainer_with("eager", torch::kCUDA, steps);
  std::vector<PendingLoss> queued;
  std::vector<double> expected;
  for (int64_t step = 1; step <= steps; ++step) {
    const std::vector<data::Batch> micro = {masked_batch(7 * step, 3), masked_batch(7 * step + 1, 3)};
    queued.push_back(graphed->queue(micro, step));
    expected.push_back(eager->step(micro, step));
  }
  EXPECT_EQ(graphed->execution(), "cuda_graph") << graphed->why_not_graphed();
  for (int64_t i = 0; i < steps; ++i)
    EXPECT_NEAR(queued[i].value(), expected[i], 1e-5 * std::fabs(expected[i])) << "step " << i + 1;
  EXPECT_GT(std::fabs(expected.front() - expected.back()), 1e-3) << "the losses differ from step to step";
}

// A step whose number of target positions was not seen gets a graph of its own; beyond
// kMaxShapes the step runs eagerly and says why.
TEST(GraphedTrainStep, NewShapesAreCapturedThenTheStepFallsBackToEager) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  auto graphed = trainer_with("cuda_graph", torch::kCUDA, 10);
  auto eager = trainer_with("eager", torch::kCUDA, 10);
  int64_t step = 0;
  for (int64_t asked = 1; asked <= GraphedTrainStep::kMaxShapes + 1; ++asked) {
    ++step;
    const std::vector<data::Batch> micro = {masked_batch(step, asked), masked_batch(100 + step, asked)};
    const double a = graphed->step(micro, step), b = eager->step(micro, step);
    EXPECT_NEAR(a, b, 1e-5 * std::fabs(b)) << "step " << step;
    if (asked <= GraphedTrainStep::kMaxShapes) {
      EXPECT_EQ(graphed->execution(), "cuda_graph") << graphed->why_not_graphed();
    } else {
      EXPECT_EQ(graphed->execution(), "eager");
      EXPECT_NE(graphed->why_not_graphed().find("changes from batch to batch"), std::string::npos)
          << graphed->why_not_graphed();
    }
  }
  ++step;  // a shape captured before replays again
  const std::vector<data::Batch> micro = {masked_batch(step, 2), masked_batch(100 + step, 2)};
  EXPECT_NEAR(graphed->step(micro, step), eager->step(micro, step), 1e-4);
  EXPECT_EQ(graphed->execution(), "cuda_graph");
}

// bf16 autocast inside the graph (the cast cache off): close to the eager bf16 step.
TEST(GraphedTrainStep, Bfloat16AutocastReplaysCloseToEager) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  auto make = [](const std::string& execution) {
    torch::manual_seed(5);
    TrainConfig c = config_with(execution);
    c.precision = "auto";
    return std::make_unique<Trainer>(LanguageModel(parse_model_config(small_model(), "test")), c, torch::kCUDA, 4);
  };
  auto graphed = make("auto"), eager = make("eager");
  ASSERT_TRUE(graphed->autocast());
  for (int64_t step = 1; step <= 4; ++step) {
    const std::vector<data::Batch> micro = {masked_batch(step, 4), masked_batch(50 + step, 4)};
    const double a = graphed->step(micro, step), b = eager->step(micro, step);
    EXPECT_EQ(graphed->execution(), "cuda_graph") << graphed->why_not_graphed();
    EXPECT_NEAR(a, b, 2e-2 * std::fabs(b)) << "step " << step;
  }
}

}  // namespace
