// CUDA-graph execution of the measured phases (harness/cuda_graph.h) against the eager call, the
// reference.  On CUDA (skipped without a GPU), for every preset at test size in bf16:
//   forward   the replayed logits equal the eager logits of the same tokens, also after new
//             tokens are copied into the captured input (a replay reads its input, not a copy)
//   backward  after replaying forward + backward, every parameter's gradient equals the eager
//             gradient within bf16 reduction-order noise (2% of the largest entry)
// A preset whose model cannot be captured must say why; the core presets must be captured.
// Everywhere: measure.execution is validated, and rows record how they ran.

#include "harness/config.h"
#include "harness/cuda_graph.h"
#include "harness/device.h"
#include "harness/measure.h"
#include "harness/model.h"
#include "tests/preset_at_test_size.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <set>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

constexpr int64_t kBatch = 2, kSeq = 64;

double max_abs(const torch::Tensor& t) { return t.abs().max().item<double>(); }

torch::Tensor random_tokens(uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randint(0, 256, {kBatch, kSeq}, torch::TensorOptions().dtype(torch::kLong)).to(torch::kCUDA);
}

// The presets whose every op is capturable today; the others must at least say why not.
bool must_capture(const std::string& preset) {
  static const std::set<std::string> core = {"transformer", "swa", "scout-swa", "mamba", "scout-mamba"};
  return core.count(preset) > 0;
}

class EveryPresetAsCudaGraph : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryPresetAsCudaGraph, ReplayEqualsTheEagerForwardAndBackward) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  torch::manual_seed(3);
  LanguageModel model(testing::preset_at_test_size(GetParam()));
  model->to(torch::kCUDA, torch::kBFloat16);
  model->train();
  auto parameters = model->parameters();
  const int64_t vocab = model->config().vocab_size;

  torch::Tensor tokens = random_tokens(1), targets = random_tokens(2).reshape({-1});
  torch::Tensor loss;
  auto forward_backward = [&] {
    auto logits = model->forward(tokens);
    loss = torch::nn::functional::cross_entropy(logits.reshape({-1, vocab}).to(torch::kFloat32), targets);
    loss.backward();
  };
  auto clear_grads = [&] {
    for (auto& p : parameters) p.mutable_grad() = torch::Tensor();
  };
  CapturedCall graph(forward_backward, 2, clear_grads);
  if (!graph.captured()) {
    EXPECT_FALSE(graph.why_not().empty());
    EXPECT_FALSE(must_capture(GetParam())) << GetParam() << " was not captured: " << graph.why_not();
    std::printf("%s: not captured: %s\n", GetParam().c_str(), graph.why_not().c_str());
    return;
  }
  // The graph writes into what it allocated while captured: the loss and the gradients.
  const torch::Tensor graph_loss = loss;
  std::vector<torch::Tensor> graph_grads;
  for (auto& p : parameters) graph_grads.push_back(p.grad());
  for (uint64_t round = 0; round < 2; ++round) {
    // New tokens into the captured buffers, then the graph, then the eager reference.
    tokens.copy_(random_tokens(10 + round));
    targets.copy_(random_tokens(20 + round).reshape({-1}));
    graph.replay();
    torch::cuda::synchronize();
    clear_grads();
    forward_backward();
    EXPECT_NEAR(graph_loss.item<double>(), loss.item<double>(), 1e-3 * std::abs(loss.item<double>())) << GetParam();
    for (size_t i = 0; i < parameters.size(); ++i) {
      if (!parameters[i].grad().defined()) {  // unused by this loss (e.g. a route not taken)
        EXPECT_FALSE(graph_grads[i].defined()) << GetParam() << " parameter " << i;
        continue;
      }
      ASSERT_TRUE(graph_grads[i].defined()) << GetParam() << " parameter " << i << " has no gradient in the graph";
      const auto eager = parameters[i].grad().to(torch::kFloat32), replayed = graph_grads[i].to(torch::kFloat32);
      EXPECT_LE(max_abs(replayed - eager), 0.02 * max_abs(eager) + 1e-6) << GetParam() << " parameter " << i;
    }
  }
}

TEST_P(EveryPresetAsCudaGraph, ForwardReplayReadsItsInput) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  torch::manual_seed(3);
  LanguageModel model(testing::preset_at_test_size(GetParam()));
  model->to(torch::kCUDA, torch::kBFloat16);
  model->eval();
  torch::NoGradGuard no_grad;
  torch::Tensor tokens = random_tokens(1), logits;
  CapturedCall graph([&] { logits = model->forward(tokens); }, 2);
  if (!graph.captured()) {
    EXPECT_FALSE(must_capture(GetParam())) << GetParam() << " was not captured: " << graph.why_not();
    return;
  }
  for (uint64_t round = 0; round < 2; ++round) {
    tokens.copy_(random_tokens(30 + round));
    graph.replay();
    const auto replayed = logits.clone();
    const auto eager = model->forward(tokens);
    EXPECT_LE(max_abs(replayed.to(torch::kFloat32) - eager.to(torch::kFloat32)), 1e-2 * max_abs(eager.to(torch::kFloat32)))
        << GetParam() << " round " << round;
  }
}

INSTANTIATE_TEST_SUITE_P(Presets, EveryPresetAsCudaGraph, ::testing::ValuesIn(preset_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           std::replace_if(name.begin(), name.end(), [](char ch) { return !std::isalnum(ch); }, '_');
                           return name;
                         });

// Embedding dropout inside a captured forward (a graphed training step has one): every replay
// draws a fresh mask (CUDAGraph advances the default generator's offset per replay), and the
// dropped forward still equals the model without dropout in eval.
TEST(CudaGraph, EmbeddingDropoutDrawsAFreshMaskAtEveryReplay) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  auto config = testing::preset_at_test_size("transformer");
  config.embedding_dropout = 0.5;
  torch::manual_seed(3);
  LanguageModel model(config);
  model->to(torch::kCUDA);
  model->train();
  torch::NoGradGuard no_grad;
  const torch::Tensor tokens = random_tokens(1);
  torch::Tensor logits;
  CapturedCall graph([&] { logits = model->forward(tokens); }, 2);
  ASSERT_TRUE(graph.captured()) << graph.why_not();
  graph.replay();
  const auto first = logits.clone();
  graph.replay();
  EXPECT_FALSE(torch::allclose(first, logits)) << "two replays drew the same dropout mask";
  model->eval();
  config.embedding_dropout = 0.0;
  torch::manual_seed(3);
  LanguageModel plain(config);
  plain->to(torch::kCUDA);
  plain->eval();
  EXPECT_TRUE(torch::allclose(model->forward(tokens), plain->forward(tokens), 1e-5, 1e-5));
}

// A call that reads a value back to the host cannot be captured: it says why, and CUDA still works.
TEST(CudaGraph, AHostSyncIsNotCapturedAndSaysWhy) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  const auto x = torch::ones({16}, torch::kCUDA);
  double read_back = 0;
  CapturedCall graph([&] { read_back = x.sum().item<double>(); }, 1);
  EXPECT_FALSE(graph.captured());
  EXPECT_FALSE(graph.why_not().empty());
  EXPECT_EQ(read_back, 16.0);  // the eager warm-up ran
  EXPECT_EQ((x * 2).sum().item<double>(), 32.0);  // the failed capture left no error behind
}

// Captures leave nothing allocated behind once their graphs and outputs are gone.  A capture on
// a fresh pool stream each time left a cuBLAS workspace (32 MiB on an H200) per stream, up to
// 32 of them, which every later peak-memory row counted; here the first capture may set up its
// stream, and forty more must not add a byte.
TEST(CudaGraph, RepeatedCapturesLeaveNoMemoryBehind) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  Device cuda;
  cuda.kind = "cuda";
  const auto a = torch::randn({256, 256}, torch::TensorOptions().device(torch::kCUDA));
  torch::Tensor product;
  const auto capture_and_replay = [&] {
    CapturedCall graph([&] { product = torch::mm(a, a); }, 1);
    ASSERT_TRUE(graph.captured()) << graph.why_not();
    graph.replay();
    torch::cuda::synchronize();
    EXPECT_NEAR(product.sum().item<double>(), torch::mm(a, a).sum().item<double>(), 1e-2 * 256 * 256);
  };
  capture_and_replay();
  product = torch::Tensor();
  torch::cuda::synchronize();
  const int64_t after_first = memory_in_use_bytes(cuda);
  for (int i = 0; i < 40; ++i) {
    capture_and_replay();
    product = torch::Tensor();
  }
  torch::cuda::synchronize();
  EXPECT_EQ(memory_in_use_bytes(cuda), after_first)
      << "forty captures left " << (memory_in_use_bytes(cuda) - after_first) / 1048576.0 << " MiB allocated";
}

// measure.execution: validated, absent from the resolved config unless given (point ids stay).
TEST(MeasureExecution, IsValidatedAndOnlyAGivenValueIsResolved) {
  const json base = {{"seq_lens", {16}}};
  EXPECT_FALSE(resolve_measure_json(base, "cpu", "spec.json", "base.measure").contains("execution"));
  json eager = base;
  eager["execution"] = "eager";
  EXPECT_EQ(resolve_measure_json(eager, "cpu", "spec.json", "base.measure")["execution"], "eager");
  json bad = base;
  bad["execution"] = "fast";
  try {
    resolve_measure_json(bad, "cpu", "spec.json", "base.measure");
    FAIL() << "an unknown execution mode was accepted";
  } catch (const ConfigError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("base.measure.execution"), std::string::npos) << message;
    EXPECT_NE(message.find("cuda_graph"), std::string::npos) << message;  // names what is valid
  }
}

// Rows record how they ran: eager on the CPU; on CUDA a graph unless eager is asked for (decode:
// a graph of the static step, harness/static_decoder.h).
TEST(MeasureExecution, RowsRecordHowTheyRan) {
  for (const std::string device : {"cpu", "cuda"}) {
    if (device == "cuda" && !torch::cuda::is_available()) continue;
    for (const std::string mode : {"auto", "eager"}) {
      torch::manual_seed(3);
      LanguageModel model(testing::preset_at_test_size("transformer"));
      json measure = {{"seq_lens", {32}}, {"phases", {"forward", "forward_backward", "decode"}}, {"repeats", 2},
                      {"warmup", 1}, {"execution", mode}};
      const auto settings = MeasureSettings::from_json(resolve_measure_json(measure, device, "test", "measure"));
      for (const auto& row : measure_model(model, settings)) {
        ASSERT_EQ(row.status, "ok") << row.error;
        const std::string expected = device == "cuda" && mode == "auto" ? "cuda_graph" : "eager";
        EXPECT_EQ(row.execution, expected) << device << " " << mode << " " << row.phase << " " << row.extra.dump();
      }
    }
  }
}

}  // namespace
}  // namespace mixlab
