// Measurement: statistics against their definitions, the repeat rules, CPU peak memory, and a
// tiny model measured end to end (FLOPs from cost(), tokens/s from the median, decode state bytes
// against the analytic KV cache, the no-step fallback, out-of-memory and non-finite statuses).

#include "harness/measure.h"
#include "harness/config.h"
#include "core/register_mixer.h"
#include "core/registry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

// A causal mixer without step(), for the decode fallback: y_t = (1/(t+1)) Σ_{j<=t} x_j.
class PrefixMean : public TokenMixer {
 public:
  torch::Tensor forward(const torch::Tensor& x) override {
    auto counts = torch::arange(1, x.size(1) + 1, x.options()).view({1, -1, 1});
    return x.cumsum(1) / counts;
  }
  Cost cost(const CostShape& shape) const override {
    Cost cost;
    cost.flops = 2.0 * shape.batch * shape.seq_len;
    return cost;
  }
};

const RegisterMixer<PrefixMean> kPrefixMeanRegistration(
    "test_prefix_mean",
    "test only: causal running mean, no step() (tests/test_measure.cpp)");

double naive_median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

TEST(MeasureTest, StatisticsFollowTheirDefinitions) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> uniform(0.5, 3.0);
  for (size_t n : {3, 4, 7, 10, 101}) {
    std::vector<double> v(n);
    for (auto& x : v) x = uniform(rng);
    double mean = 0;
    for (double x : v) mean += x;
    mean /= n;
    double ss = 0;
    for (double x : v) ss += (x - mean) * (x - mean);  // two-pass sample variance
    EXPECT_NEAR(statistics_mean(v), mean, 1e-12);
    EXPECT_NEAR(statistics_median(v), naive_median(v), 1e-12) << n;
    EXPECT_NEAR(statistics_stddev(v), std::sqrt(ss / (n - 1)), 1e-9);
    const auto s = summarize(v);
    EXPECT_EQ(s.min, *std::min_element(v.begin(), v.end()));
    EXPECT_EQ(s.max, *std::max_element(v.begin(), v.end()));
    EXPECT_EQ(s.repeats, static_cast<int64_t>(n));
  }
  EXPECT_EQ(statistics_stddev({2.0}), 0.0);
}

TEST(MeasureTest, RepeatRulesWarmupMinimumMaximumTarget) {
  MeasureSettings s;
  s.warmup = 2;
  s.min_repeats = 3;
  s.repeats = 50;
  s.target_seconds = 0.02;
  Device cpu;
  CallTimer timer(cpu);
  int calls = 0;
  auto samples = time_repeats([&] { ++calls; std::this_thread::sleep_for(std::chrono::milliseconds(4)); }, s, timer);
  // 4 ms per call, target 20 ms: stops after about 5 timed calls, never before min_repeats.
  EXPECT_GE(samples.size(), 3u);
  EXPECT_LE(samples.size(), 7u);
  EXPECT_EQ(calls, static_cast<int>(samples.size()) + 2);
  for (double ms : samples) EXPECT_GE(ms, 3.9);
  s.target_seconds = 100;
  s.repeats = 4;
  calls = 0;
  EXPECT_EQ(time_repeats([&] { ++calls; }, s, timer).size(), 4u);
  EXPECT_EQ(calls, 6);
}

TEST(MeasureTest, CpuPeakMemorySeesAnAllocation) {
  PeakMemory peak(Device{});
  peak.reset();
  {
    auto big = torch::ones({64 * 1024 * 1024 / 4}, torch::kFloat32);  // 64 MiB, touched
    EXPECT_EQ(big.sum().item<double>(), 64.0 * 1024 * 1024 / 4);
  }
  const double grown = peak.peak_bytes();
  EXPECT_GE(grown, 60.0 * 1024 * 1024);
  EXPECT_LE(grown, 200.0 * 1024 * 1024);
  peak.reset();  // the peak is reset: the freed 64 MiB no longer counts
  EXPECT_LT(peak.peak_bytes(), 32.0 * 1024 * 1024);
}

json tiny_model(const std::string& mixer) {
  return json::parse(R"({"vocab_size": 32, "d_model": 16, "n_heads": 2, "n_layers": 2,
                         "pattern": [{"mixer": ")" + mixer + R"("}, {"mixer": "mlp"}]})");
}

MeasureSettings tiny_settings(std::vector<int64_t> seq_lens) {
  json measure = {{"seq_lens", seq_lens}, {"batch", 2}, {"warmup", 1}, {"repeats", 3}, {"target_seconds", 0.0},
                  {"dtype", "float64"}};
  return MeasureSettings::from_json(resolve_measure_json(measure, "cpu", "t", "measure"));
}

TEST(MeasureTest, TinyModelFiguresAgreeWithCostAndTiming) {
  LanguageModel model(parse_model_config(tiny_model("attention"), "t"));
  const auto settings = tiny_settings({8, 32});
  std::vector<std::string> observed;
  const auto rows = measure_model(model, settings, [&](int64_t n, const std::string& phase, size_t i, size_t count) {
    observed.push_back(phase + std::to_string(n));
    EXPECT_EQ(count, 6u);
  });
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(observed.front(), "forward8");
  for (const auto& m : rows) {
    ASSERT_EQ(m.status, "ok") << m.phase << " " << m.error;
    const Cost cost = model->cost({2, m.seq_len, 8});
    ASSERT_TRUE(m.timing && m.flops && m.tokens_per_s);
    EXPECT_EQ(*m.state_bytes, cost.state_bytes);
    EXPECT_GE(m.timing->repeats, 3);
    EXPECT_LE(m.timing->min, m.timing->median);
    EXPECT_LE(m.timing->median, m.timing->max);
    if (m.phase == "forward") {
      EXPECT_DOUBLE_EQ(*m.flops, cost.flops);
      EXPECT_DOUBLE_EQ(*m.tokens_per_s, 2.0 * m.seq_len / (m.timing->median / 1000.0));
    } else if (m.phase == "forward_backward") {
      EXPECT_DOUBLE_EQ(*m.flops, 3.0 * cost.flops);
    } else {
      // Two attention layers each hold K and V for B·N tokens of width d: 2·2·B·N·d float64s,
      // which is what cost() states; the mlp holds nothing.
      ASSERT_TRUE(m.measured_state_bytes);
      EXPECT_DOUBLE_EQ(*m.measured_state_bytes, 2.0 * 2.0 * 2 * m.seq_len * 16 * 8);
      EXPECT_DOUBLE_EQ(*m.measured_state_bytes, cost.state_bytes);
      EXPECT_DOUBLE_EQ(*m.tokens_per_s, 2.0 / (m.timing->median / 1000.0));
      EXPECT_DOUBLE_EQ(*m.flops, cost.flops / m.seq_len);  // an average step of the N-token generation
      EXPECT_TRUE(m.extra.contains("generate_tokens_per_s"));
      EXPECT_FALSE(m.extra.contains("decode_fallback"));
    }
    ASSERT_TRUE(m.tflops_per_s) << m.phase;
    EXPECT_DOUBLE_EQ(*m.tflops_per_s, *m.flops / (m.timing->median / 1000.0) / 1e12);
  }
}

TEST(MeasureTest, DecodeWithoutStepRerunsThePrefixAndSaysSo) {
  LanguageModel model(parse_model_config(tiny_model("test_prefix_mean"), "t"));
  auto settings = tiny_settings({16});
  settings.phases = {"decode"};
  const auto rows = measure_model(model, settings);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].status, "ok");
  EXPECT_EQ(rows[0].extra.value("decode_fallback", ""), "re-run prefix");
  EXPECT_DOUBLE_EQ(*rows[0].flops, model->cost({2, 16, 8}).flops);
  EXPECT_FALSE(rows[0].measured_state_bytes);
}

// prefill (SCOUT §4.5): a row per prompt length with the state of N + new tokens, its FLOPs those of
// the prompt's forward plus the new tokens' steps; a model without static steps is an error row
// that says why; prefill_new_tokens is validated and enters the config only when given.
TEST(MeasureTest, PrefillTimesThePromptAndTheNewTokens) {
  LanguageModel model(parse_model_config(tiny_model("attention"), "t"));
  auto settings = tiny_settings({8, 24});
  settings.phases = {"prefill"};
  settings.prefill_new_tokens = 4;
  const auto rows = measure_model(model, settings);
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& row : rows) {
    ASSERT_EQ(row.status, "ok") << row.error;
    EXPECT_EQ(row.extra.value("new_tokens", 0), 4);
    // two attention layers' KV caches of N + 4 slots: 2 (K, V) · B · (N + 4) · d · 8 bytes
    EXPECT_DOUBLE_EQ(*row.measured_state_bytes, 2.0 * 2 * 2 * (row.seq_len + 4) * 16 * 8);
    EXPECT_NEAR(*row.flops, model->cost({2, row.seq_len, 8}).flops * (1.0 + 4.0 / row.seq_len), 1e-6 * *row.flops);
  }
  LanguageModel without(parse_model_config(tiny_model("test_prefix_mean"), "t"));
  const auto refused = measure_model(without, settings);
  ASSERT_EQ(refused.size(), 2u);
  EXPECT_EQ(refused[0].status, "error");
  EXPECT_NE(refused[0].error.find("static_step"), std::string::npos) << refused[0].error;

  const json base = {{"seq_lens", {16}}};
  EXPECT_FALSE(resolve_measure_json(base, "cpu", "spec.json", "base.measure").contains("prefill_new_tokens"));
  json bad = base;
  bad["prefill_new_tokens"] = -1;
  EXPECT_THROW(resolve_measure_json(bad, "cpu", "spec.json", "base.measure"), ConfigError);
}

// decode_timing = "spans": one timed sample per span of the static decoder, every position of
// the generation counted once in the span that reads it (N = 700: 256 positions of span 256,
// 256 of span 512, 188 of span 700), the total their sum and tokens/s batch·N over it; a model
// with a sublayer that has no static step is an error row that says why; the setting is
// validated and enters the config only when given.
TEST(MeasureTest, DecodeTimingBySpansAddsUpTheSpans) {
  LanguageModel model(parse_model_config(tiny_model("attention"), "t"));
  auto settings = tiny_settings({700});
  settings.phases = {"decode"};
  settings.decode_timing = "spans";
  const auto rows = measure_model(model, settings);
  ASSERT_EQ(rows.size(), 1u);
  ASSERT_EQ(rows[0].status, "ok") << rows[0].error;
  const json& extra = rows[0].extra;
  EXPECT_EQ(extra.value("generate_timing", ""), "spans");
  const json& spans = extra.at("span_step_ms");
  ASSERT_EQ(spans.size(), 3u) << spans.dump();
  const double total_ms = 256 * spans.at("256").get<double>() + 256 * spans.at("512").get<double>() +
                          188 * spans.at("700").get<double>();
  EXPECT_NEAR(extra.at("generate_total_s").get<double>(), total_ms / 1000.0, 1e-9 * total_ms);
  EXPECT_NEAR(extra.at("generate_tokens_per_s").get<double>(), 2.0 * 700 / (total_ms / 1000.0),
              1e-6 * extra.at("generate_tokens_per_s").get<double>());
  // two attention layers' caches of 700 slots: 2 (K, V) · B · 700 · d · 8 bytes
  EXPECT_DOUBLE_EQ(*rows[0].measured_state_bytes, 2.0 * 2 * 2 * 700 * 16 * 8);

  LanguageModel without(parse_model_config(tiny_model("linear_attention"), "t"));
  ASSERT_TRUE(without->has_step());
  const auto refused = measure_model(without, settings);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].status, "error");
  EXPECT_NE(refused[0].error.find("decode_timing"), std::string::npos) << refused[0].error;

  const json base = {{"seq_lens", {16}}};
  EXPECT_FALSE(resolve_measure_json(base, "cpu", "spec.json", "base.measure").contains("decode_timing"));
  json bad = base;
  bad["decode_timing"] = "sampled";
  try {
    resolve_measure_json(bad, "cpu", "spec.json", "base.measure");
    FAIL() << "an unknown decode_timing was accepted";
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("base.measure.decode_timing"), std::string::npos) << error.what();
  }
}

TEST(MeasureTest, OutOfMemoryAndNonFiniteAreStatusesNotFailures) {
  // Logits of 2^22 tokens over a 2^23 vocabulary would need 2^47 bytes: more than any address
  // space, so the allocation fails at once on every machine.
  json huge = json::parse(R"({"vocab_size": 8388608, "d_model": 2, "n_heads": 1, "n_layers": 1,
                              "pattern": [{"mixer": "mlp", "hidden": 1}]})");
  {
    LanguageModel model(parse_model_config(huge, "t"));
    json measure = {{"seq_lens", {1, 4194304, 8388608}}, {"phases", json::array({"forward"})}, {"warmup", 0}, {"repeats", 1}};
    const auto rows = measure_model(model, MeasureSettings::from_json(resolve_measure_json(measure, "cpu", "t", "m")));
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_EQ(rows[0].status, "ok");
    EXPECT_EQ(rows[1].status, "oom") << rows[1].error;
    EXPECT_EQ(rows[2].status, "oom");
    EXPECT_NE(rows[2].error.find("not attempted"), std::string::npos) << rows[2].error;
  }
  // Zero embeddings and eps = 0: RMSNorm computes 0 · rsqrt(0) = NaN.
  json zero = tiny_model("attention");
  zero["init_std"] = 0.0;
  zero["norm_eps"] = 0.0;
  LanguageModel model(parse_model_config(zero, "t"));
  const auto rows = measure_model(model, tiny_settings({8}));
  ASSERT_EQ(rows.size(), 3u);
  for (const auto& m : rows) EXPECT_EQ(m.status, "nonfinite") << m.phase;
}

TEST(MeasureTest, TimeBudgetStopsTheLadder) {
  LanguageModel model(parse_model_config(tiny_model("attention"), "t"));
  auto settings = tiny_settings({8, 16, 32});
  settings.phases = {"forward"};
  settings.min_repeats = settings.repeats = 1;
  settings.warmup = 0;
  settings.time_budget_s = 1e-6;
  const auto rows = measure_model(model, settings);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows.back().status, "time_budget");
  EXPECT_NE(rows.back().error.find("time budget"), std::string::npos);
  EXPECT_FALSE(rows.back().timing);
}


// measure.threads: the measurements run with that many CPU threads, each records the count it
// ran with, and the process's setting comes back afterwards.  Absent, the key stays out of the
// resolved settings (older point ids unchanged).
TEST(MeasureTest, ThreadsSettingIsUsedRecordedAndRestored) {
  EXPECT_FALSE(resolve_measure_json({{"seq_lens", json::array({8})}}, "cpu", "t", "m").contains("threads"));
  const json resolved = resolve_measure_json({{"seq_lens", json::array({8})}, {"phases", json::array({"forward"})}, {"repeats", 1},
                                              {"warmup", 0}, {"threads", 3}},
                                             "cpu", "t", "m");
  const int before = torch::get_num_threads();
  torch::set_num_threads(1);
  LanguageModel model(parse_model_config(tiny_model("test_prefix_mean"), "t"));
  const auto rows = measure_model(model, MeasureSettings::from_json(resolved));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].extra.value("threads", 0), 3);
  EXPECT_EQ(torch::get_num_threads(), 1);
  torch::set_num_threads(before);
  EXPECT_THROW(resolve_measure_json({{"seq_lens", json::array({8})}, {"threads", 0}}, "cpu", "t", "m"), ConfigError);
}

}  // namespace
}  // namespace mixlab
