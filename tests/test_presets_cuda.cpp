// Every preset trains on CUDA (skipped without a GPU): 20 optimiser steps under bf16 autocast
// lower the loss and track the CPU float32 run from the same initial weights and batches.
//
//   shrink     tests/preset_at_test_size.h (d_model 128, 2 heads, at most 2 repeats, windows <= 32)
//   data       MQAR (64 symbols, 8 pairs, length 64), batches of 8, batch s from seed (s)
//   optimiser  the harness's Trainer: AdamW, lr 3e-3, no warm-up, cosine to 3e-4, clip 1.0
//   tolerance  at every step |loss_cuda − loss_cpu| ≤ 5% of loss_cpu (bf16 rounding of the
//              matrix products moves the curve by ~1%), and the mean of the last 5 CUDA losses
//              is below the first loss

#include "data/synthetic.h"
#include "harness/config.h"
#include "harness/model.h"
#include "harness/train.h"
#include "tests/preset_at_test_size.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <numeric>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

constexpr int64_t kSteps = 20, kBatch = 8, kSeq = 64;
constexpr double kRelativeTolerance = 0.05;

TrainConfig test_training(const std::string& precision) {
  TrainConfig config;
  config.source = "mqar";
  config.seq_len = kSeq;
  config.batch_size = kBatch;
  config.steps = kSteps;
  config.lr = 3e-3;
  config.min_lr = 3e-4;
  config.precision = precision;
  return config;
}

// The loss of each of kSteps optimiser steps of `model` on `device`.
std::vector<double> train_curve(const ModelConfig& model_config, torch::Device device, const std::string& precision) {
  torch::manual_seed(7);  // the same initial weights on both devices
  LanguageModel model(model_config);
  Trainer trainer(model, test_training(precision), device, kSteps);
  data::TaskSpec spec;
  spec.task = "mqar";
  spec.seq_len = kSeq;
  spec.vocab = 64;
  spec.num_kv_pairs = 8;
  const data::SyntheticTask task(spec);
  std::vector<double> losses;
  for (int64_t step = 1; step <= kSteps; ++step)
    losses.push_back(trainer.step({task.batch(/*seed=*/11, /*split=*/0, step * kBatch, kBatch)}, step));
  return losses;
}

class EveryPresetOnCuda : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryPresetOnCuda, TrainsUnderBf16AutocastAndTracksTheCpuFloat32Run) {
  // MIXLAB_TEST_DEVICE=cpu runs the "device" curve on the CPU in float32 (to debug the test itself).
  const char* override_device = std::getenv("MIXLAB_TEST_DEVICE");
  const bool on_cpu = override_device && std::string(override_device) == "cpu";
  if (!on_cpu && !torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  const ModelConfig config = testing::preset_at_test_size(GetParam());
  const auto cpu = train_curve(config, torch::kCPU, "float32");
  const auto cuda = on_cpu ? train_curve(config, torch::kCPU, "float32") : train_curve(config, torch::kCUDA, "bfloat16");
  double worst = 0;
  for (int64_t s = 0; s < kSteps; ++s) {
    const double deviation = std::abs(cuda[s] - cpu[s]) / cpu[s];
    worst = std::max(worst, deviation);
    EXPECT_LE(deviation, kRelativeTolerance) << GetParam() << " step " << s + 1 << ": CUDA bf16 loss " << cuda[s]
                                             << ", CPU float32 loss " << cpu[s];
  }
  const double tail = std::accumulate(cuda.end() - 5, cuda.end(), 0.0) / 5.0;
  EXPECT_LT(tail, cuda.front()) << GetParam() << ": the loss did not fall (first " << cuda.front() << ", last five "
                                << tail << ")";
  std::printf("%s: loss %.4f -> %.4f (CUDA bf16), %.4f -> %.4f (CPU float32), largest deviation %.2f%%\n",
              GetParam().c_str(), cuda.front(), cuda.back(), cpu.front(), cpu.back(), 100.0 * worst);
}

INSTANTIATE_TEST_SUITE_P(Presets, EveryPresetOnCuda, ::testing::ValuesIn(preset_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           std::replace_if(name.begin(), name.end(), [](char ch) { return !std::isalnum(ch); }, '_');
                           return name;
                         });

}  // namespace
}  // namespace mixlab
