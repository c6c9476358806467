// Static decoding (harness/static_decoder.h, TokenMixer::static_step) against step(), the
// reference: the same logits at every position, for every preset whose sublayers have a static
// step, over more positions than the smallest span (so the spans change), windows that wrap and
// segments that close.  On the CPU in float64 (the same step run eagerly); on CUDA in float32 with
// every step a CUDA graph replay.  The reference is fed the static decoder's own tokens, so a
// near-tie in an argmax cannot make the two sequences part.

#include "core/implementation.h"
#include "harness/static_decoder.h"
#include "tests/preset_at_test_size.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <set>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

constexpr int64_t kBatch = 2;

// The presets whose every sublayer must have a static step.
bool must_be_static(const std::string& preset) {
  static const std::set<std::string> core = {"transformer", "swa", "scout-swa", "mamba", "scout-mamba",
                                             "qwen2-340m", "scout-swa-470m", "scout-mamba-430m",
                                             "mamba-546m", "qwen2-alternate-swa-366m"};
  return core.count(preset) > 0;
}

double max_abs(const torch::Tensor& t) { return t.abs().max().item<double>(); }

// Decodes `steps` tokens with the static decoder and, fed the same tokens, with step(); returns
// the largest difference of the logits relative to their size over all steps.
double largest_relative_gap(LanguageModel& model, const torch::TensorOptions& options, int64_t capacity,
                            int64_t steps, bool graphs, std::string* execution = nullptr) {
  torch::NoGradGuard no_grad;
  model->eval();
  StaticDecoder decoder(model, kBatch, capacity, options, graphs);
  if (execution) *execution = decoder.execution();
  auto first = torch::randint(0, model->config().vocab_size, {kBatch}, options.dtype(torch::kLong));
  decoder.reset(first);
  auto states = model->initial_states(kBatch, options);
  auto token = first;
  double gap = 0;
  for (int64_t t = 0; t < steps; ++t) {
    decoder.step();
    const auto reference = model->step(token, states).to(torch::kFloat64);  // [B, vocab]
    const auto replayed = decoder.logits().to(torch::kFloat64);
    gap = std::max(gap, max_abs(replayed - reference) / max_abs(reference));
    token = decoder.tokens().clone();
  }
  return gap;
}

// m = ⌊t / divisor⌋ mod modulus, against the integer formula at every t of a few spans.
TEST(SlotRule, IsTheFloorQuotientModuloTheModulus) {
  for (const SlotRule rule : {SlotRule{1, 32}, SlotRule{10, 0}, SlotRule{3, 5}, SlotRule{1, 0}}) {
    for (int64_t t = 0; t < 100; ++t) {
      const int64_t quotient = t / rule.divisor, want = rule.modulus > 0 ? quotient % rule.modulus : quotient;
      const auto got = rule.of(torch::full({1}, t, torch::kLong));
      ASSERT_EQ(got.item<int64_t>(), want) << "t " << t << ", divisor " << rule.divisor << ", modulus " << rule.modulus;
    }
  }
  // A slot the caller made is used as it is; without one the step makes it.
  StepPosition at{torch::full({1}, 47, torch::kLong), 64};
  EXPECT_EQ(at.slot_by(SlotRule{10, 0}).item<int64_t>(), 4);
  at.slot = torch::full({1}, 2, torch::kLong);
  EXPECT_EQ(at.slot_by(SlotRule{10, 0}).item<int64_t>(), 2);
}

class StaticDecodePresets : public ::testing::TestWithParam<std::string> {};

TEST_P(StaticDecodePresets, EqualsStepOnTheCpu) {
  torch::manual_seed(5);
  LanguageModel model(testing::preset_at_test_size(GetParam()));
  model->to(torch::kFloat64);
  if (!model->has_static_step()) {
    EXPECT_FALSE(must_be_static(GetParam())) << GetParam() << " lost its static step";
    GTEST_SKIP() << GetParam() << ": a sublayer has no static_step()";
  }
  // 300 positions: spans 256 then 300; windows of 32 wrap, segments of 10 close.
  const auto options = torch::TensorOptions().dtype(torch::kFloat64);
  EXPECT_LT(largest_relative_gap(model, options, 300, 300, /*graphs=*/false), 1e-10) << GetParam();
}

TEST_P(StaticDecodePresets, GraphReplayEqualsStepOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  torch::manual_seed(5);
  LanguageModel model(testing::preset_at_test_size(GetParam()));
  if (!model->has_static_step()) GTEST_SKIP() << GetParam() << ": a sublayer has no static_step()";
  model->to(torch::kCUDA, torch::kFloat32);
  const auto options = torch::TensorOptions().dtype(torch::kFloat32).device(torch::kCUDA);
  std::string execution;
  const double gap = largest_relative_gap(model, options, 600, 600, /*graphs=*/true, &execution);
  EXPECT_EQ(execution, "cuda_graph") << GetParam();
  EXPECT_LT(gap, 1e-3) << GetParam();  // float32, different kernels (TF32 off): reduction order only
}

// A prompt consumed at once (static_prefill) leaves the state N steps leave: the logits of its last
// token equal step()'s after the same N tokens, and so do those of the tokens decoded after it.
// 37 tokens: windows of 32 wrap, segments of 10 close and one is left open.  Returns the largest
// relative gap (prompt and decoded tokens).
double prefill_then_decode_gap(LanguageModel& model, const torch::TensorOptions& options, bool graphs) {
  torch::NoGradGuard no_grad;
  model->eval();
  const int64_t prompt_length = 37, generated = 40;
  const auto prompt = torch::randint(0, model->config().vocab_size, {kBatch, prompt_length}, options.dtype(torch::kLong));
  StaticDecoder decoder(model, kBatch, prompt_length + generated, options, graphs);
  decoder.prefill(prompt);
  EXPECT_EQ(decoder.position(), prompt_length);
  auto states = model->initial_states(kBatch, options);
  torch::Tensor reference;
  for (int64_t t = 0; t < prompt_length; ++t) reference = model->step(prompt.select(1, t), states);
  auto gap = [](const torch::Tensor& a, const torch::Tensor& b) {
    return max_abs(a.to(torch::kFloat64) - b.to(torch::kFloat64)) / max_abs(b.to(torch::kFloat64));
  };
  double largest = gap(decoder.logits(), reference);
  for (int64_t t = 0; t < generated; ++t) {
    const auto token = decoder.tokens().clone();
    decoder.step();
    reference = model->step(token, states);
    largest = std::max(largest, gap(decoder.logits(), reference));
  }
  return largest;
}

TEST_P(StaticDecodePresets, PrefillThenDecodeEqualsStepOnTheCpu) {
  torch::manual_seed(8);
  LanguageModel model(testing::preset_at_test_size(GetParam()));
  model->to(torch::kFloat64);
  if (!model->has_static_step()) GTEST_SKIP() << GetParam() << ": a sublayer has no static_step()";
  EXPECT_LT(prefill_then_decode_gap(model, torch::TensorOptions().dtype(torch::kFloat64), false), 1e-10) << GetParam();
}

// The same on CUDA in float32, the decoded tokens as graph replays and the prompt through the CUDA
// kernels of the forward (sliding window, checkpoints, scan).
TEST_P(StaticDecodePresets, PrefillThenGraphReplaysEqualStepOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  torch::manual_seed(8);
  LanguageModel model(testing::preset_at_test_size(GetParam()));
  if (!model->has_static_step()) GTEST_SKIP() << GetParam() << ": a sublayer has no static_step()";
  model->to(torch::kCUDA, torch::kFloat32);
  const auto options = torch::TensorOptions().dtype(torch::kFloat32).device(torch::kCUDA);
  EXPECT_LT(prefill_then_decode_gap(model, options, true), 1e-3) << GetParam();
}

// bf16 on CUDA, where the decode kernels run (each norm folded into its sublayer's first product,
// each residual add into its output projection: TokenMixer::fused_static_step, skinny_linear_add),
// against step() in float64 on the CPU with the same bf16 weights.  bf16 rounds every activation and
// the residual stream (2^-9 relative each), so the bound is loose, 6e-2 of the logits' largest
// value; a sublayer that lost its norm, applied it twice or added its output twice misses it by
// far more.
TEST_P(StaticDecodePresets, Bf16GraphReplaysFollowTheFloat64StepOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU";
  torch::NoGradGuard no_grad;
  torch::manual_seed(8);
  LanguageModel model(testing::preset_at_test_size(GetParam()));
  if (!model->has_static_step()) GTEST_SKIP() << GetParam() << ": a sublayer has no static_step()";
  model->to(torch::kCUDA, torch::kBFloat16);
  model->eval();
  LanguageModel reference(testing::preset_at_test_size(GetParam()));
  const auto weights = model->named_parameters();
  for (auto& item : reference->named_parameters()) item.value().copy_(weights[item.key()].to(torch::kCPU));
  reference->to(torch::kFloat64);
  reference->eval();

  const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  ImplementationLog log;
  StaticDecoder decoder(model, kBatch, 64, bf16, /*graphs=*/true);
  EXPECT_EQ(decoder.execution(), "cuda_graph") << GetParam();
  EXPECT_NE(log.summary().find("skinny_linear_add=kernel"), std::string::npos) << GetParam() << ": " << log.summary();
  auto token = torch::randint(0, model->config().vocab_size, {kBatch}, torch::kLong);
  decoder.reset(token.to(torch::kCUDA));
  auto states = reference->initial_states(kBatch, torch::TensorOptions().dtype(torch::kFloat64));
  double gap = 0;
  for (int64_t t = 0; t < 40; ++t) {
    decoder.step();
    const auto expected = reference->step(token, states);  // [B, vocab] float64
    const auto got = decoder.logits().to(torch::kCPU, torch::kFloat64);
    gap = std::max(gap, max_abs(got - expected) / max_abs(expected));
    token = decoder.tokens().to(torch::kCPU);
  }
  std::cout << "[ bf16 gap ] " << GetParam() << ": " << gap << "\n";
  EXPECT_LT(gap, 6e-2) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Presets, StaticDecodePresets, ::testing::ValuesIn(preset_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           std::replace_if(name.begin(), name.end(), [](char ch) { return !std::isalnum(ch); }, '_');
                           return name;
                         });

// Contexts shorter than a segment or a window, and a capacity of one token: every step attends to
// itself (and the few slots written), with no span or slot out of range.
TEST(StaticDecode, ShortContextsEqualStep) {
  for (int64_t capacity : {1, 3, 9, 11}) {
    torch::manual_seed(6);
    LanguageModel model(testing::preset_at_test_size("scout-swa"));
    model->to(torch::kFloat64);
    const auto options = torch::TensorOptions().dtype(torch::kFloat64);
    EXPECT_LT(largest_relative_gap(model, options, capacity, capacity, false), 1e-10) << "capacity " << capacity;
  }
}

// Spans double from the smallest up to the capacity; no step past the capacity.
TEST(StaticDecode, SpansDoubleAndTheCapacityIsEnforced) {
  torch::manual_seed(7);
  LanguageModel model(testing::preset_at_test_size("transformer"));
  StaticDecoder decoder(model, 1, 1000, torch::TensorOptions().dtype(torch::kFloat32), false);
  EXPECT_EQ(decoder.span_at(0), StaticDecoder::kMinSpan);
  EXPECT_EQ(decoder.span_at(255), 256);
  EXPECT_EQ(decoder.span_at(256), 512);
  EXPECT_EQ(decoder.span_at(999), 1000);
  EXPECT_EQ(decoder.execution(), "eager");
  StaticDecoder tiny(model, 1, 2, torch::TensorOptions().dtype(torch::kFloat32), false);
  tiny.reset(torch::zeros({1}, torch::kLong));
  tiny.step();
  tiny.step();
  EXPECT_THROW(tiny.step(), std::out_of_range);
}

// seek() (timing by spans) moves the position and nothing else: the next step decodes there, the
// capacity still holds, and a position outside [0, capacity) is refused.
TEST(StaticDecode, SeekMovesThePosition) {
  torch::manual_seed(8);
  LanguageModel model(testing::preset_at_test_size("transformer"));
  StaticDecoder decoder(model, 1, 600, torch::TensorOptions().dtype(torch::kFloat32), false);
  decoder.reset(torch::zeros({1}, torch::kLong));
  decoder.seek(512);
  EXPECT_EQ(decoder.position(), 512);
  EXPECT_EQ(decoder.span_at(decoder.position()), 600);
  decoder.step();
  EXPECT_EQ(decoder.position(), 513);
  decoder.seek(599);
  decoder.step();  // the last slot
  EXPECT_THROW(decoder.step(), std::out_of_range);
  EXPECT_THROW(decoder.seek(600), std::out_of_range);
  EXPECT_THROW(decoder.seek(-1), std::out_of_range);
  EXPECT_TRUE(torch::isfinite(decoder.logits()).all().item<bool>());
}

// A model with a sublayer whose state grows (no static step) is refused with the reason.
TEST(StaticDecode, AModelWithoutStaticStepsIsRefused) {
  ModelConfig config = testing::preset_at_test_size("transformer");
  config.pattern = {SublayerConfig{"nsa", {}}};
  LanguageModel model(config);
  ASSERT_FALSE(model->has_static_step());
  try {
    StaticDecoder decoder(model, 1, 8, torch::TensorOptions().dtype(torch::kFloat32), false);
    FAIL() << "a model without static steps was accepted";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("static_step"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace mixlab
