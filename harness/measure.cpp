#include "harness/measure.h"

#include "core/text.h"

#include "harness/cuda_graph.h"
#include "harness/static_decoder.h"

#include "core/implementation.h"
#include "harness/interrupt.h"

#include "harness/config.h"
#include "harness/device.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <set>

namespace mixlab {

using json = nlohmann::json;

// ----------------------------------------------------------------------------- the settings

namespace {
struct Phase;
const std::vector<Phase>& phase_table();
}  // namespace

const std::vector<std::string>& phase_names();

const std::vector<std::string>& measure_keys() {
  static const std::vector<std::string> keys = {
      "seq_lens", "decode_seq_lens", "batch", "phases", "warmup", "repeats", "min_repeats", "target_seconds",
      "time_budget_s", "decode_chunks", "prefill_new_tokens", "skip_after_oom", "dtype", "seed", "threads",
      "execution", "decode_timing"};
  return keys;
}

namespace {

int64_t integer_in(const json& value, const std::string& file, const std::string& path, int64_t lo, int64_t hi) {
  if (!value.is_number_integer())
    throw ConfigError(file, path, "must be an integer, got " + value.dump());
  const int64_t x = value.get<int64_t>();
  if (x < lo || x > hi)
    throw ConfigError(file, path, "is " + std::to_string(x) + ", outside the valid range [" + std::to_string(lo) +
                                      ", " + std::to_string(hi) + "]");
  return x;
}

double real_in(const json& value, const std::string& file, const std::string& path, double lo, double hi) {
  if (!value.is_number()) throw ConfigError(file, path, "must be a number, got " + value.dump());
  const double x = value.get<double>();
  if (!(x >= lo && x <= hi))
    throw ConfigError(file, path, "is " + value.dump() + ", outside the valid range [" + json(lo).dump() + ", " +
                                      json(hi).dump() + "]");
  return x;
}

constexpr int64_t kMaxSeqLen = int64_t{1} << 26;
// A ladder longer than this is a typo (a step of 1 over a long range), not a study; it is
// refused before anything is allocated.
constexpr int64_t kMaxSeqLenCount = 1024;

}  // namespace

std::vector<int64_t> expand_seq_lens(const json& value, const std::string& file, const std::string& path) {
  std::vector<int64_t> lengths;
  if (value.is_array()) {
    if (value.empty()) throw ConfigError(file, path, "is an empty list; give at least one sequence length");
    if (value.size() > static_cast<size_t>(kMaxSeqLenCount))
      throw ConfigError(file, path, "lists " + std::to_string(value.size()) + " sequence lengths, more than the " +
                                        std::to_string(kMaxSeqLenCount) + " allowed");
    for (size_t i = 0; i < value.size(); ++i)
      lengths.push_back(integer_in(value[i], file, path + "[" + std::to_string(i) + "]", 1, kMaxSeqLen));
  } else if (value.is_object()) {
    for (auto it = value.begin(); it != value.end(); ++it)
      if (it.key() != "from" && it.key() != "to" && it.key() != "times" && it.key() != "step")
        throw ConfigError(file, path + "." + it.key(), "unknown key in a range; valid: from, to, times, step");
    if (!value.contains("from") || !value.contains("to"))
      throw ConfigError(file, path, "a range needs \"from\" and \"to\", and \"times\" or \"step\"");
    const int64_t from = integer_in(value["from"], file, path + ".from", 1, kMaxSeqLen);
    const int64_t to = integer_in(value["to"], file, path + ".to", from, kMaxSeqLen);
    if (value.contains("times") == value.contains("step"))
      throw ConfigError(file, path, "a range needs exactly one of \"times\" (geometric) or \"step\" (arithmetic)");
    if (value.contains("times")) {
      const int64_t times = integer_in(value["times"], file, path + ".times", 2, 1024);
      for (int64_t n = from; n <= to; n *= times) lengths.push_back(n);
    } else {
      const int64_t step = integer_in(value["step"], file, path + ".step", 1, kMaxSeqLen);
      const int64_t count = (to - from) / step + 1;
      if (count > kMaxSeqLenCount)
        throw ConfigError(file, path, "expands to " + std::to_string(count) + " sequence lengths, more than the " +
                                          std::to_string(kMaxSeqLenCount) + " allowed; use a larger \"step\" or \"times\"");
      for (int64_t n = from; n <= to; n += step) lengths.push_back(n);
    }
  } else {
    throw ConfigError(file, path, "must be a list of sequence lengths or a range {\"from\": 256, \"to\": 65536, \"times\": 2}");
  }
  std::set<int64_t> seen;
  for (size_t i = 0; i < lengths.size(); ++i)
    if (!seen.insert(lengths[i]).second)
      throw ConfigError(file, path, "sequence length " + std::to_string(lengths[i]) + " is listed twice");
  std::sort(lengths.begin(), lengths.end());
  return lengths;
}

json resolve_measure_json(const json& measure_in, const std::string& device_kind, const std::string& file,
                          const std::string& path) {
  const json measure = measure_in.is_null() ? json::object() : measure_in;
  if (!measure.is_object()) throw ConfigError(file, path, "must be an object");
  const auto& keys = measure_keys();
  for (auto it = measure.begin(); it != measure.end(); ++it)
    if (std::find(keys.begin(), keys.end(), it.key()) == keys.end())
      throw ConfigError(file, path + "." + it.key(),
                        it.key() == "device" ? "the device is chosen on the command line (--device auto|cpu|cuda)"
                                             : "unknown key; valid: " + joined(keys));
  MeasureSettings defaults;
  json out = json::object();
  std::vector<std::string> phases = defaults.phases;
  if (measure.contains("phases")) {
    const json& list = measure["phases"];
    if (!list.is_array()) throw ConfigError(file, path + ".phases", "must be a list; valid entries: " + joined(phase_names()));
    phases.clear();
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string where = path + ".phases[" + std::to_string(i) + "]";
      if (!list[i].is_string()) throw ConfigError(file, where, "must be a string; valid: " + joined(phase_names()));
      const std::string name = list[i].get<std::string>();
      if (std::find(phase_names().begin(), phase_names().end(), name) == phase_names().end())
        throw ConfigError(file, where, "unknown phase '" + name + "'; valid: " + joined(phase_names()));
      if (std::find(phases.begin(), phases.end(), name) != phases.end())
        throw ConfigError(file, where, "phase '" + name + "' is listed twice");
      phases.push_back(name);
    }
  }
  out["phases"] = phases;
  if (measure.contains("seq_lens")) {
    out["seq_lens"] = expand_seq_lens(measure["seq_lens"], file, path + ".seq_lens");
  } else if (!phases.empty()) {
    throw ConfigError(file, path + ".seq_lens", "is missing; give a list or a range {\"from\": 256, \"to\": 4096, \"times\": 2}");
  } else {
    out["seq_lens"] = json::array();
  }
  if (measure.contains("decode_seq_lens"))
    out["decode_seq_lens"] = expand_seq_lens(measure["decode_seq_lens"], file, path + ".decode_seq_lens");
  out["batch"] = measure.contains("batch") ? integer_in(measure["batch"], file, path + ".batch", 1, 1 << 20) : defaults.batch;
  out["warmup"] = measure.contains("warmup") ? integer_in(measure["warmup"], file, path + ".warmup", 0, 1000) : defaults.warmup;
  out["repeats"] = measure.contains("repeats") ? integer_in(measure["repeats"], file, path + ".repeats", 1, 100000) : defaults.repeats;
  out["min_repeats"] = measure.contains("min_repeats")
                           ? integer_in(measure["min_repeats"], file, path + ".min_repeats", 1, out["repeats"].get<int64_t>())
                           : std::min(defaults.min_repeats, out["repeats"].get<int64_t>());
  out["target_seconds"] = measure.contains("target_seconds")
                              ? real_in(measure["target_seconds"], file, path + ".target_seconds", 0.0, 3600.0)
                              : defaults.target_seconds;
  out["time_budget_s"] = measure.contains("time_budget_s")
                             ? real_in(measure["time_budget_s"], file, path + ".time_budget_s", 0.0, 1e7)
                             : defaults.time_budget_s;
  out["decode_chunks"] = measure.contains("decode_chunks")
                             ? integer_in(measure["decode_chunks"], file, path + ".decode_chunks", 1, 1 << 20)
                             : defaults.decode_chunks;
  if (measure.contains("skip_after_oom") && !measure["skip_after_oom"].is_boolean())
    throw ConfigError(file, path + ".skip_after_oom", "must be true or false");
  out["skip_after_oom"] = measure.value("skip_after_oom", defaults.skip_after_oom);
  out["seed"] = measure.contains("seed") ? integer_in(measure["seed"], file, path + ".seed", 0, int64_t{1} << 62) : defaults.seed;
  std::string dtype = "auto";
  if (measure.contains("dtype")) {
    if (!measure["dtype"].is_string())
      throw ConfigError(file, path + ".dtype", "must be a string; valid: auto, float32, float64, bfloat16, float16");
    dtype = measure["dtype"].get<std::string>();
  }
  static const std::vector<std::string> dtypes = {"auto", "float32", "float64", "bfloat16", "float16"};
  if (std::find(dtypes.begin(), dtypes.end(), dtype) == dtypes.end())
    throw ConfigError(file, path + ".dtype", "unknown dtype '" + dtype + "'; valid: " + joined(dtypes));
  // prefill: the tokens generated after the prompt (absent = 10, SCOUT's latency protocol); only a
  // given value enters the resolved config, as for threads.
  if (measure.contains("prefill_new_tokens"))
    out["prefill_new_tokens"] = integer_in(measure["prefill_new_tokens"], file, path + ".prefill_new_tokens", 0, 1 << 20);
  // CPU threads for the measurements (absent = LibTorch's default, recorded per measurement).
  // Only a given value enters the resolved config, so that the ids of older points stay.
  if (measure.contains("threads")) out["threads"] = integer_in(measure["threads"], file, path + ".threads", 1, 4096);
  // How forward, forward_backward and decode run on CUDA: "auto" (a CUDA graph, eager when it cannot be
  // captured; decode: on a static state), "cuda_graph" (the same; asking for it explicitly) or
  // "eager" (decode: step() on growing caches).  Absent = "auto";
  // only a given value enters the resolved config, as for threads.
  if (measure.contains("execution")) {
    static const std::vector<std::string> modes = {"auto", "cuda_graph", "eager"};
    const json& mode = measure["execution"];
    if (!mode.is_string() || std::find(modes.begin(), modes.end(), mode.get<std::string>()) == modes.end())
      throw ConfigError(file, path + ".execution", "is " + mode.dump() + "; valid: " + joined(modes));
    out["execution"] = mode;
  }
  // decode: "generate" (absent = this) or "spans"; only a given value enters the resolved config.
  if (measure.contains("decode_timing")) {
    static const std::vector<std::string> timings = {"generate", "spans"};
    const json& timing = measure["decode_timing"];
    if (!timing.is_string() || std::find(timings.begin(), timings.end(), timing.get<std::string>()) == timings.end())
      throw ConfigError(file, path + ".decode_timing", "is " + timing.dump() + "; valid: " + joined(timings));
    out["decode_timing"] = timing;
  }
  out["device"] = device_kind;
  out["dtype"] = resolve_dtype(dtype, device_kind);
  return out;
}

MeasureSettings MeasureSettings::from_json(const json& m) {
  MeasureSettings s;
  s.seq_lens = m.at("seq_lens").get<std::vector<int64_t>>();
  if (m.contains("decode_seq_lens")) s.decode_seq_lens = m["decode_seq_lens"].get<std::vector<int64_t>>();
  s.batch = m.at("batch").get<int64_t>();
  s.phases = m.at("phases").get<std::vector<std::string>>();
  s.warmup = m.at("warmup").get<int64_t>();
  s.repeats = m.at("repeats").get<int64_t>();
  s.min_repeats = m.at("min_repeats").get<int64_t>();
  s.target_seconds = m.at("target_seconds").get<double>();
  s.time_budget_s = m.at("time_budget_s").get<double>();
  s.decode_chunks = m.at("decode_chunks").get<int64_t>();
  s.skip_after_oom = m.at("skip_after_oom").get<bool>();
  s.device = m.at("device").get<std::string>();
  s.dtype = m.at("dtype").get<std::string>();
  s.seed = m.at("seed").get<int64_t>();
  s.threads = m.value("threads", int64_t{0});
  s.prefill_new_tokens = m.value("prefill_new_tokens", int64_t{10});
  s.execution = m.value("execution", std::string("auto"));
  s.decode_timing = m.value("decode_timing", std::string("generate"));
  return s;
}

// ----------------------------------------------------------------------------- statistics
//
// The definitions are Google Benchmark's (benchmark::StatisticsMean / StatisticsMedian /
// StatisticsStdDev, src/statistics.cc): the median of an even count is the mean of the two middle
// values, and fewer than three samples give the mean; the standard deviation is the sample
// (n - 1) estimate, sqrt(n/(n-1) · (E[x²] - E[x]²)).  They are written out here rather than
// linked because those functions are declared only in the library's private header, and
// mixlab_harness must also build on the GPU machine, which has no Google Benchmark;
// bench/harness_overhead.cpp checks that these agree with the library's to 1e-12.

double statistics_mean(const std::vector<double>& v) {
  if (v.empty()) return 0.0;
  double sum = 0;
  for (double x : v) sum += x;
  return sum / static_cast<double>(v.size());
}

double statistics_median(std::vector<double> v) {
  if (v.size() < 3) return statistics_mean(v);
  const size_t center = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + center, v.end());
  if (v.size() % 2 == 1) return v[center];
  const double upper = v[center];
  const double lower = *std::max_element(v.begin(), v.begin() + center);
  return (lower + upper) / 2.0;
}

double statistics_stddev(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double mean = statistics_mean(v);
  double squares = 0;
  for (double x : v) squares += x * x;
  const double n = static_cast<double>(v.size());
  const double variance = n / (n - 1.0) * (squares / n - mean * mean);
  return variance > 0 ? std::sqrt(variance) : 0.0;
}

TimingSummary summarize(const std::vector<double>& samples) {
  TimingSummary s;
  if (samples.empty()) return s;
  s.median = statistics_median(samples);
  s.mean = statistics_mean(samples);
  s.stddev = statistics_stddev(samples);
  s.min = *std::min_element(samples.begin(), samples.end());
  s.max = *std::max_element(samples.begin(), samples.end());
  s.repeats = static_cast<int64_t>(samples.size());
  return s;
}

// ----------------------------------------------------------------------------- timing

std::vector<double> time_repeats(const std::function<void()>& call, const MeasureSettings& settings,
                                 CallTimer& timer, const std::function<bool()>& out_of_time) {
  // Between two calls: an interrupt (Ctrl-C) ends the measurement, an exhausted time budget ends
  // the repeats (the samples taken so far are kept; at least one is always taken).
  auto stop = [&] {
    throw_if_interrupted();
    return out_of_time && out_of_time();
  };
  for (int64_t i = 0; i < settings.warmup; ++i) {
    timer.start();  // the warm-up goes through the same path, so the first timed call is not the first call
    call();
    timer.stop_ms();
    if (stop()) break;
  }
  if (ProfiledRange::requested()) {  // one more call, alone in the profiler's range (bench/kernel_breakdown.sh)
    const ProfiledRange range;
    call();
  }
  std::vector<double> samples;
  samples.reserve(static_cast<size_t>(settings.repeats));
  const double target_ms = settings.target_seconds * 1000.0;
  double total_ms = 0;
  while (static_cast<int64_t>(samples.size()) < settings.repeats) {
    timer.start();
    call();
    const double ms = timer.stop_ms();
    samples.push_back(ms);
    total_ms += ms;
    if (static_cast<int64_t>(samples.size()) >= settings.min_repeats && total_ms >= target_ms) break;
    if (stop()) break;
  }
  return samples;
}

// ----------------------------------------------------------------------------- one model

namespace {

struct BudgetExceeded : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using Clock = std::chrono::steady_clock;

struct Context {
  LanguageModel& model;
  const MeasureSettings& settings;
  Device device;
  Clock::time_point started;
  int64_t vocab = 0;

  double elapsed_s() const { return std::chrono::duration<double>(Clock::now() - started).count(); }
  bool over_budget() const { return settings.time_budget_s > 0 && elapsed_s() > settings.time_budget_s; }
  std::string budget_message() const {
    return "per-point time budget of " + json(settings.time_budget_s).dump() + " s exhausted after " +
           std::to_string(static_cast<int64_t>(elapsed_s())) + " s";
  }
};

torch::Tensor random_tokens(const Context& c, int64_t n, int64_t offset) {
  torch::manual_seed(static_cast<uint64_t>(c.settings.seed + offset));
  return torch::randint(0, c.vocab, {c.settings.batch, n}, torch::TensorOptions().dtype(torch::kLong))
      .to(c.device.torch_device());
}

bool all_finite(const torch::Tensor& t) { return torch::isfinite(t).all().item<bool>(); }

// Averages of the sublayers' own statistics from the last forward (e.g. a routed fraction).
json sublayer_statistics(LanguageModel& model) {
  std::map<std::string, std::pair<double, int>> sums;
  for (const auto& sublayer : model->sublayers())
    for (const auto& [name, value] : sublayer->statistics()) {
      sums[name].first += value;
      sums[name].second += 1;
    }
  json out = json::object();
  for (const auto& [name, sum] : sums) out[name] = sum.first / sum.second;
  return out;
}

void fill_from_timing(Measurement& m, const std::vector<double>& samples, double tokens_per_call) {
  m.timing = summarize(samples);
  m.extra["samples_ms"] = samples;  // every timed repeat, for error bars and bootstrap intervals (reports/)
  const double seconds = m.timing->median / 1000.0;
  if (seconds > 0) m.tokens_per_s = tokens_per_call / seconds;  // TFLOP/s: from the phase table's FLOPs
}

// The call a phase times: the eager call itself, or the replay of its CUDA graph (captured here,
// once for this shape) when the settings ask for graphs on CUDA and the call can be captured.
// Records the execution mode on the row, and why a graph was not used when one was asked for.
struct PhaseCall {
  std::function<void()> run;
  std::unique_ptr<CapturedCall> graph;
};

PhaseCall prepare_call(const Context& c, Measurement& m, const std::function<void()>& eager,
                       const std::function<void()>& graphable, const std::function<void()>& before_capture = {}) {
  m.execution = "eager";
  if (!c.device.is_cuda() || c.settings.execution == "eager") return {eager, nullptr};
  auto graph = std::make_unique<CapturedCall>(graphable, static_cast<int>(std::max<int64_t>(c.settings.warmup, 2)),
                                              before_capture);
  if (!graph->captured()) {
    m.extra["graph_not_captured"] = graph->why_not();
    return {eager, nullptr};
  }
  m.execution = "cuda_graph";
  CapturedCall* replayed = graph.get();
  return {[replayed] { replayed->replay(); }, std::move(graph)};
}

// The row's peak memory, and on CUDA what was already allocated when its measurement began (the
// model's weights, and anything earlier work in the process left behind): the CUDA peak is
// absolute and includes both.
void record_peak(const Context& c, Measurement& m, const PeakMemory& peak) {
  m.peak_memory_bytes = peak.peak_bytes();
  if (c.device.is_cuda()) m.extra["memory_in_use_at_start_bytes"] = peak.bytes_at_reset();
}

// logits = model(tokens[B, N]) without autograd, timed (as a CUDA graph where the settings allow);
// the one timed forward of the forward phase and of decoding without step().
void time_forward(Context& c, Measurement& m, int64_t n, double tokens_per_call) {
  torch::NoGradGuard no_grad;
  c.model->eval();
  const auto tokens = random_tokens(c, n, n);
  CallTimer timer(c.device);
  PeakMemory peak(c.device);
  torch::Tensor logits;
  peak.reset();
  const auto forward = [&] { logits = torch::Tensor(); logits = c.model->forward(tokens); };
  const PhaseCall call = prepare_call(c, m, forward, forward);
  auto samples = time_repeats(call.run, c.settings, timer, [&] { return c.over_budget(); });
  record_peak(c, m, peak);
  fill_from_timing(m, samples, tokens_per_call);
  m.extra.update(sublayer_statistics(c.model));
  if (!all_finite(logits)) { m.status = "nonfinite"; m.error = "the forward output has NaN or Inf"; }
}

void measure_forward(Context& c, Measurement& m) {
  time_forward(c, m, m.seq_len, static_cast<double>(c.settings.batch * m.seq_len));
}

// loss = CE(model(tokens), next tokens); loss.backward().
void measure_forward_backward(Context& c, Measurement& m) {
  c.model->train();
  const auto tokens = random_tokens(c, m.seq_len, m.seq_len);
  const auto targets = random_tokens(c, m.seq_len, m.seq_len + 1).reshape({-1});
  auto parameters = c.model->parameters();
  CallTimer timer(c.device);
  PeakMemory peak(c.device);
  torch::Tensor loss;
  auto clear_grads = [&] {
    for (auto& p : parameters) p.mutable_grad() = torch::Tensor();
  };
  peak.reset();
  // Under a graph the gradients are set to None once before the capture and then rewritten in
  // place by every replay (PyTorch's whole-network capture); eagerly, before every call.
  const auto forward_backward = [&] {
    auto logits = c.model->forward(tokens);
    loss = torch::nn::functional::cross_entropy(logits.reshape({-1, c.vocab}).to(torch::kFloat32), targets);
    loss.backward();
  };
  const auto eager = [&] { clear_grads(); forward_backward(); };
  const PhaseCall call = prepare_call(c, m, eager, forward_backward, clear_grads);
  auto samples = time_repeats(call.run, c.settings, timer, [&] { return c.over_budget(); });
  record_peak(c, m, peak);
  clear_grads();
  fill_from_timing(m, samples, static_cast<double>(c.settings.batch * m.seq_len));
  if (!all_finite(loss.detach())) { m.status = "nonfinite"; m.error = "the loss is NaN or Inf"; }
}

// Times `step` (one generated token per sequence) n times from position 0, in decode_chunks
// chunks: the per-step latency of a chunk is its time over its steps.  Fills the timing columns.
void time_generation(Context& c, Measurement& m, int64_t n, const std::function<void()>& step) {
  CallTimer timer(c.device);
  const int64_t chunk = (n + c.settings.decode_chunks - 1) / c.settings.decode_chunks;
  std::vector<double> per_step_ms;
  double total_ms = 0;
  for (int64_t position = 0; position < n; position += chunk) {
    const int64_t steps = std::min(chunk, n - position);
    timer.start();
    for (int64_t i = 0; i < steps; ++i) step();
    const double ms = timer.stop_ms();
    per_step_ms.push_back(ms / static_cast<double>(steps));
    total_ms += ms;
    throw_if_interrupted();
    if (c.over_budget() && position + steps < n)
      throw BudgetExceeded(c.budget_message() + " while decoding at position " + std::to_string(position + steps));
  }
  const double batch = static_cast<double>(c.settings.batch);
  fill_from_timing(m, per_step_ms, batch);
  m.extra["generate_tokens_per_s"] = batch * static_cast<double>(n) / (total_ms / 1000.0);
  m.extra["generate_total_s"] = total_ms / 1000.0;
  m.extra["steps_per_chunk"] = chunk;
}

// decode_timing = "spans": the generation time of N tokens from timed samples of each span of
// the static decoder.  The graph of span s serves positions [s/2, s) (harness/static_decoder.h);
// inside it a step's work grows with t (attend_to_prefix reads the slots up to t, about linearly),
// so the span's time is Simpson's rule over three sampled positions,
//   T(N) = Σ_s n_s · (τ_s(a) + 4 τ_s(m) + τ_s(b)) / 6,   n_s = |{t < N : span(t) = s}|
// where a, m, b are the first, middle and last window of k = kSpanSampleSteps steps of the
// span's positions and τ_s(x) the per-step time of the best of three runs of that window (exact
// for a cost quadratic in t; seek(): the state is not what a generation would hold there, which
// changes the values read, not the work).  A span of at most 3k positions is timed whole.
double time_span_window(StaticDecoder& decoder, CallTimer& timer, int64_t first, int64_t steps) {
  double best = std::numeric_limits<double>::infinity();
  for (int run = 0; run < 4; ++run) {  // the first run warms up
    decoder.seek(first);
    timer.start();
    for (int64_t i = 0; i < steps; ++i) decoder.step();
    const double ms = timer.stop_ms() / static_cast<double>(steps);
    if (run > 0) best = std::min(best, ms);
  }
  return best;
}

void time_generation_by_spans(Context& c, Measurement& m, StaticDecoder& decoder) {
  CallTimer timer(c.device);
  const int64_t n = m.seq_len;
  const int64_t k = MeasureSettings::kSpanSampleSteps;
  std::vector<double> per_step_ms;
  json span_step_ms = json::object();
  double total_ms = 0;
  for (int64_t start = 0; start < n;) {
    const int64_t span = decoder.span_at(start);
    const int64_t end = span < decoder.capacity() ? std::min(span, n) : n;  // positions [start, end) read `span`
    const int64_t length = end - start;
    double mean_ms;  // per step over [start, end)
    if (length <= 3 * k) {
      mean_ms = time_span_window(decoder, timer, start, length);
    } else {
      const double a = time_span_window(decoder, timer, start, k);
      const double mid = time_span_window(decoder, timer, start + (length - k) / 2, k);
      const double b = time_span_window(decoder, timer, end - k, k);
      mean_ms = (a + 4 * mid + b) / 6;
    }
    per_step_ms.push_back(mean_ms);
    span_step_ms[std::to_string(span)] = mean_ms;
    total_ms += mean_ms * static_cast<double>(length);
    throw_if_interrupted();
    start = end;
  }
  const double batch = static_cast<double>(c.settings.batch);
  fill_from_timing(m, per_step_ms, batch);
  m.extra["generate_tokens_per_s"] = batch * static_cast<double>(n) / (total_ms / 1000.0);
  m.extra["generate_total_s"] = total_ms / 1000.0;
  m.extra["generate_timing"] = "spans";
  m.extra["span_step_ms"] = span_step_ms;
}

// Decoding on a static state (harness/static_decoder.h): on CUDA every step one CUDA graph replay.
// The state is preallocated for the point's N tokens, so the measured state is that of N tokens.
void decode_static(Context& c, Measurement& m, const torch::TensorOptions& options, const torch::Tensor& first_token,
                   bool graphs) {
  PeakMemory peak(c.device);
  peak.reset();
  StaticDecoder decoder(c.model, c.settings.batch, m.seq_len, options, graphs,
                        static_cast<int>(std::max<int64_t>(c.settings.warmup, 1)));
  m.execution = decoder.execution();
  if (!decoder.why_not_captured().empty()) m.extra["graph_not_captured"] = decoder.why_not_captured();
  if (ProfiledRange::requested()) {  // one step at position 0, alone in the profiler's range
    decoder.reset(first_token);
    const ProfiledRange range;
    decoder.step();
  }
  decoder.reset(first_token);
  if (c.settings.decode_timing == "spans")
    time_generation_by_spans(c, m, decoder);
  else
    time_generation(c, m, m.seq_len, [&] { decoder.step(); });
  record_peak(c, m, peak);
  m.measured_state_bytes = static_cast<double>(decoder.state_bytes());
  m.extra["decode_state"] = "static";
  if (!all_finite(decoder.logits())) { m.status = "nonfinite"; m.error = "the decoded logits have NaN or Inf"; }
}

// Decoding with step(): caches that grow with the context (attention/kv_cache.h), launched eagerly.
void decode_dynamic(Context& c, Measurement& m, const torch::TensorOptions& options, const torch::Tensor& first_token) {
  const int64_t batch = c.settings.batch;
  {  // warm-up on a throw-away state
    auto states = c.model->initial_states(batch, options);
    auto token = first_token;
    const int64_t steps = std::min<int64_t>(m.seq_len, 4 * c.settings.warmup);
    for (int64_t i = 0; i < steps; ++i) token = c.model->step(token, states).argmax(-1);
    synchronize(c.device);
  }
  PeakMemory peak(c.device);
  peak.reset();
  auto states = c.model->initial_states(batch, options);
  auto token = first_token;
  torch::Tensor logits;
  m.execution = "eager";
  time_generation(c, m, m.seq_len, [&] {
    logits = c.model->step(token, states);
    token = logits.argmax(-1);
  });
  record_peak(c, m, peak);
  int64_t state_bytes = 0;
  for (const auto& state : states) state_bytes += state.bytes();
  m.measured_state_bytes = static_cast<double>(state_bytes);
  if (!all_finite(logits)) { m.status = "nonfinite"; m.error = "the decoded logits have NaN or Inf"; }
}

// SCOUT's prefill latency (arXiv 2509.00935, §4.5): a prompt of N tokens consumed at once
// (static_prefill), then measure.prefill_new_tokens greedy tokens as static steps (CUDA graphs on
// CUDA unless execution = eager); the time of the whole call.  The state is preallocated for
// N + new tokens, outside the timing, as a generate() call's cache would be before its first token.
void measure_prefill(Context& c, Measurement& m) {
  torch::NoGradGuard no_grad;
  c.model->eval();
  if (!c.model->has_static_step())
    throw std::invalid_argument("prefill needs static_step() in every sublayer (docs/decode.md); this model has a "
                                "sublayer without it");
  const int64_t new_tokens = c.settings.prefill_new_tokens, batch = c.settings.batch;
  const auto options = torch::TensorOptions().dtype(c.device.scalar_type()).device(c.device.torch_device());
  const bool graphs = c.device.is_cuda() && c.settings.execution != "eager";
  PeakMemory peak(c.device);
  peak.reset();
  StaticDecoder decoder(c.model, batch, m.seq_len + new_tokens, options, graphs,
                        static_cast<int>(std::max<int64_t>(c.settings.warmup, 1)));
  m.execution = decoder.execution();
  if (!decoder.why_not_captured().empty()) m.extra["graph_not_captured"] = decoder.why_not_captured();
  const auto prompt = random_tokens(c, m.seq_len, m.seq_len);
  const auto generate = [&] {
    decoder.prefill(prompt);
    for (int64_t i = 0; i < new_tokens; ++i) decoder.step();
  };
  CallTimer timer(c.device);
  auto samples = time_repeats(generate, c.settings, timer, [&] { return c.over_budget(); });
  record_peak(c, m, peak);
  m.measured_state_bytes = static_cast<double>(decoder.state_bytes());
  fill_from_timing(m, samples, static_cast<double>(batch * (m.seq_len + new_tokens)));
  m.extra["new_tokens"] = new_tokens;
  m.extra["decode_state"] = "static";
  if (!all_finite(decoder.logits())) { m.status = "nonfinite"; m.error = "the decoded logits have NaN or Inf"; }
}

// Greedy generation of N tokens from an empty state (prompt: one token per sequence).  On CUDA
// with graphs allowed and every sublayer able to, on a static state as CUDA graphs; else with step().
void measure_decode(Context& c, Measurement& m) {
  torch::NoGradGuard no_grad;
  c.model->eval();
  if (!c.model->has_step()) {
    // Producing token N without a state means re-running the N-token prefix: one forward over N
    // tokens per generated token (its FLOPs: the whole forward; the phase table's factor is N).
    time_forward(c, m, m.seq_len, static_cast<double>(c.settings.batch));
    m.extra["decode_fallback"] = "re-run prefix";
    return;
  }
  const auto options = torch::TensorOptions().dtype(c.device.scalar_type()).device(c.device.torch_device());
  auto first_token = torch::zeros({c.settings.batch}, torch::TensorOptions().dtype(torch::kLong).device(c.device.torch_device()));
  const bool graphs = c.device.is_cuda() && c.settings.execution != "eager";
  const bool spans = c.settings.decode_timing == "spans";
  if ((graphs || spans) && c.model->has_static_step()) return decode_static(c, m, options, first_token, graphs);
  if (spans)
    throw std::invalid_argument("measure.decode_timing = \"spans\" needs a static decode step in every sublayer "
                                "(docs/decode.md); this model has a sublayer without one: use \"generate\"");
  if (graphs) m.extra["graph_not_captured"] = "a sublayer has no static_step() (its state grows or is routed)";
  decode_dynamic(c, m, options, first_token);
}

// The measured phases, one row each (docs/design.md, "Measurement rules"): the call a row times,
// the ladder it runs over, and the FLOPs of one timed call as a multiple of the forward
// cost().flops of the point at N.
struct Phase {
  std::string name;
  void (*measure)(Context&, Measurement&);
  bool decode_ladder;  // measure.decode_seq_lens, when given, instead of seq_lens
  // forward: 1; forward + backward: 3 (backward ≈ 2 × forward); decode: an average step of the
  // N-token generation, 1/N (without step() one call is a whole forward: 1).
  double (*flop_factor)(const Measurement& m);
};

const std::vector<Phase>& phase_table() {
  static const std::vector<Phase> table = {
      {"forward", measure_forward, false, [](const Measurement&) { return 1.0; }},
      {"forward_backward", measure_forward_backward, false, [](const Measurement&) { return 3.0; }},
      {"decode", measure_decode, true,
       [](const Measurement& m) { return m.extra.contains("decode_fallback") ? 1.0 : 1.0 / static_cast<double>(m.seq_len); }},
      {"prefill", measure_prefill, false,
       [](const Measurement& m) {  // the prompt's forward and the new tokens' steps
         return 1.0 + m.extra.value("new_tokens", 0.0) / static_cast<double>(std::max<int64_t>(m.seq_len, 1));
       }},
  };
  return table;
}

const Phase& phase_named(const std::string& name) {
  for (const auto& phase : phase_table())
    if (phase.name == name) return phase;
  throw std::invalid_argument("unknown phase '" + name + "'");  // settings are validated before
}

}  // namespace

const std::vector<int64_t>& MeasureSettings::lengths_for(const std::string& phase) const {
  return phase_named(phase).decode_ladder && !decode_seq_lens.empty() ? decode_seq_lens : seq_lens;
}

const std::vector<std::string>& phase_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& phase : phase_table()) out.push_back(phase.name);
    return out;
  }();
  return names;
}

std::vector<Measurement> measure_model(LanguageModel& model, const MeasureSettings& settings,
                                       const MeasureObserver& observer, const StoredMeasurements& stored,
                                       const MeasurementSink& sink) {
  const ScopedThreadCount thread_count(settings.device == "cpu" ? settings.threads : 0);
  Context c{model, settings, Device{settings.device, settings.dtype}, Clock::now(), model->config().vocab_size};
  model->to(c.device.torch_device(), c.device.scalar_type());
  // Phases run in the order listed, each over its whole ladder, so that a time budget cuts the
  // last (usually the slowest: decode) phase rather than the long lengths of every phase.
  size_t count = 0;
  for (const auto& phase : settings.phases) count += settings.lengths_for(phase).size();

  std::vector<Measurement> rows;
  std::map<std::string, int64_t> oom_at = stored.oom_at;
  size_t index = 0;
  const int64_t bpe = bytes_per_element(settings.dtype);
  for (const auto& phase : settings.phases) {
    for (int64_t n : settings.lengths_for(phase)) {
      if (stored.done.count({phase, n})) {  // measured before the point was cut
        ++index;
        continue;
      }
      const Cost cost = model->cost(CostShape{settings.batch, n, bpe});
      if (observer) observer(n, phase, index, count);
      ++index;
      Measurement m;
      m.phase = phase;
      m.seq_len = n;
      m.batch = settings.batch;
      m.state_bytes = cost.state_bytes;
      if (settings.device == "cpu") m.extra["threads"] = torch::get_num_threads();
      if (c.over_budget()) {
        m.status = "time_budget";
        m.error = c.budget_message();
      } else if (settings.skip_after_oom && oom_at.count(phase)) {
        m.status = "oom";
        m.error = "not attempted: ran out of memory at N=" + std::to_string(oom_at[phase]);
      } else {
        ImplementationLog implementations;
        try {
          const Phase& row = phase_named(phase);
          row.measure(c, m);
          m.flops = row.flop_factor(m) * cost.flops;
          if (m.timing && m.timing->median > 0) m.tflops_per_s = *m.flops / (m.timing->median / 1000.0) / 1e12;
        } catch (const Interrupted&) {
          throw;  // the sweep ends the point cleanly
        } catch (const BudgetExceeded& error) {
          m = Measurement{phase, n, settings.batch, "time_budget", error.what()};
          m.state_bytes = cost.state_bytes;
        } catch (const std::exception& error) {
          const bool oom = is_out_of_memory(error);
          std::string message = error.what();
          message = message.substr(0, message.find('\n'));  // c10::Error appends a backtrace
          m = Measurement{phase, n, settings.batch, oom ? "oom" : "error", message};
          m.state_bytes = cost.state_bytes;
          if (oom) {
            oom_at.emplace(phase, n);
            release_cached_memory(c.device);
          }
          for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
        }
        m.implementation = implementations.summary();
      }
      if (sink) sink(m);
      rows.push_back(std::move(m));
    }
  }
  return rows;
}

}  // namespace mixlab
