// How much does measuring cost?  The harness's own work per timed call (timer start/stop, the
// call through std::function, storing the sample) must stay under 2% of the smallest operation the
// quickstart times: a forward pass of the d_model=64, 2-layer transformer at 64 tokens.
//
//   ./build/mixlab_bench --benchmark_min_time=0.2 --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true
//
// (On a shared machine the direct-vs-through-the-harness difference is dominated by noise; the
// clean figure is the harness's own work per timed call, measured around an empty call.)
//
// Prints Google Benchmark's table, then the overhead as a percentage.  Also checks that the
// harness's statistics (harness/measure.cpp) agree with Google Benchmark's own functions.

#include "harness/config.h"
#include "harness/measure.h"

#include <benchmark/benchmark.h>

#include <cmath>
#include <iostream>
#include <map>
#include <random>

// Google Benchmark's statistics (src/statistics.h; exported by libbenchmark but not declared in
// its public header).
namespace benchmark {
double StatisticsMean(const std::vector<double>& v);
double StatisticsMedian(const std::vector<double>& v);
double StatisticsStdDev(const std::vector<double>& v);
}  // namespace benchmark

namespace {

using namespace mixlab;

LanguageModel& quickstart_like_model() {
  static LanguageModel model = [] {
    torch::NoGradGuard no_grad;
    auto config = parse_model_config(json::parse(R"({"vocab_size": 256, "d_model": 64, "n_heads": 4, "n_layers": 2,
        "pattern": [{"mixer": "attention"}, {"mixer": "mlp"}]})"), "bench");
    LanguageModel m(config);
    m->eval();
    return m;
  }();
  return model;
}

torch::Tensor tokens(int64_t n) { return torch::randint(0, 256, {1, n}, torch::kLong); }

// The operation alone.
void BM_ForwardDirect(benchmark::State& state) {
  torch::NoGradGuard no_grad;
  auto& model = quickstart_like_model();
  const auto x = tokens(state.range(0));
  torch::Tensor out;
  for (auto _ : state) {
    out = torch::Tensor();
    out = model->forward(x);
  }
}
BENCHMARK(BM_ForwardDirect)->Arg(64)->Arg(256)->Unit(benchmark::kMicrosecond);

// The same operation timed by the harness, one timed call per iteration.
void BM_ForwardThroughHarness(benchmark::State& state) {
  torch::NoGradGuard no_grad;
  auto& model = quickstart_like_model();
  const auto x = tokens(state.range(0));
  MeasureSettings settings;
  settings.warmup = 0;
  settings.repeats = settings.min_repeats = 1;
  settings.target_seconds = 0;
  CallTimer timer(Device{});
  torch::Tensor out;
  for (auto _ : state) {
    auto samples = time_repeats([&] { out = torch::Tensor(); out = model->forward(x); }, settings, timer);
    benchmark::DoNotOptimize(samples.data());
  }
}
BENCHMARK(BM_ForwardThroughHarness)->Arg(64)->Arg(256)->Unit(benchmark::kMicrosecond);

// The harness around an empty call: its cost per timed call, by itself.
void BM_HarnessPerCall(benchmark::State& state) {
  MeasureSettings settings;
  settings.warmup = 0;
  settings.repeats = settings.min_repeats = 1000;
  settings.target_seconds = 0;
  CallTimer timer(Device{});
  int calls = 0;
  for (auto _ : state) {
    auto samples = time_repeats([&] { benchmark::DoNotOptimize(++calls); }, settings, timer);
    benchmark::DoNotOptimize(samples.data());
  }
  state.SetItemsProcessed(state.iterations() * settings.repeats);
}
BENCHMARK(BM_HarnessPerCall)->Unit(benchmark::kMicrosecond);

// Once per measurement, outside the timed calls: resetting and reading the peak RSS.
void BM_PeakMemoryResetAndRead(benchmark::State& state) {
  PeakMemory peak(Device{});
  for (auto _ : state) {
    peak.reset();
    benchmark::DoNotOptimize(peak.peak_bytes());
  }
}
BENCHMARK(BM_PeakMemoryResetAndRead)->Unit(benchmark::kMicrosecond);

// Keeps each benchmark's adjusted real time (ns per iteration) for the summary.
class CapturingReporter : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, double> ns;
  void ReportRuns(const std::vector<Run>& runs) override {
    // With --benchmark_repetitions the median of the repetitions is kept, else the one run.
    for (const auto& run : runs) {
      const std::string name = run.run_name.str();
      if (run.run_type == Run::RT_Aggregate && run.aggregate_name == "median")
        ns[name] = run.GetAdjustedRealTime() * 1e3;  // us -> ns
      else if (run.run_type == Run::RT_Iteration && !ns.count(name + "#median"))
        ns[name] = run.GetAdjustedRealTime() * 1e3;
      if (run.run_type == Run::RT_Aggregate && run.aggregate_name == "median") ns[name + "#median"] = 1;
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

bool statistics_agree() {
  std::mt19937 rng(1);
  std::lognormal_distribution<double> dist(0.0, 0.3);
  for (size_t n : {1, 2, 3, 8, 25, 1000}) {
    std::vector<double> v(n);
    for (auto& x : v) x = dist(rng);
    auto close = [](double a, double b) { return std::fabs(a - b) <= 1e-12 * std::max(1.0, std::fabs(b)); };
    if (!close(statistics_mean(v), benchmark::StatisticsMean(v)) ||
        !close(statistics_median(v), benchmark::StatisticsMedian(v)) ||
        !close(statistics_stddev(v), benchmark::StatisticsStdDev(v))) {
      std::cerr << "statistics disagree with Google Benchmark's for n=" << n << "\n";
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const bool agree = statistics_agree();
  std::cout << "harness statistics == Google Benchmark's (mean, median, stddev): " << (agree ? "yes" : "NO") << "\n";
  CapturingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  const auto& ns = reporter.ns;
  auto get = [&](const std::string& name) { auto it = ns.find(name); return it == ns.end() ? NAN : it->second; };
  const double per_call = get("BM_HarnessPerCall") / 1000.0;
  // A --benchmark_filter that leaves out the overhead's benchmarks (e.g. 'TrainHost',
  // bench/train_host_cost.cpp) gets no overhead summary.
  if (std::isnan(per_call) || std::isnan(get("BM_ForwardDirect/64"))) return agree ? 0 : 1;
  for (int64_t n : {64, 256}) {
    const double direct = get("BM_ForwardDirect/" + std::to_string(n));
    const double through = get("BM_ForwardThroughHarness/" + std::to_string(n));
    std::printf("forward N=%-4lld direct %9.1f us, through the harness %9.1f us (%+.2f%%); harness work per timed "
                "call %.0f ns = %.3f%% of the op\n",
                static_cast<long long>(n), direct / 1e3, through / 1e3, 100.0 * (through - direct) / direct, per_call,
                100.0 * per_call / direct);
  }
  const double smallest = get("BM_ForwardDirect/64");
  const bool ok = agree && 100.0 * per_call / smallest < 2.0;
  std::printf("harness overhead under 2%% of the smallest quickstart op: %s\n", ok ? "yes" : "NO");
  return ok ? 0 : 1;
}
