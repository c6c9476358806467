#pragma once
// Measuring one model against sequence length (docs/design.md, "Measurement rules").
//
// For each phase (in the order listed) and each sequence length N of its ladder (one row each of
// the phase table in measure.cpp: the call timed, its ladder, its FLOPs as a multiple of cost()):
//   forward           logits = model(tokens[B, N]) without autograd
//   forward_backward  loss = CE(model(tokens), targets); loss.backward()      (FLOPs = 3 x forward)
//   decode            greedy generation of N tokens with step() from an empty state, timed in
//                     chunks; a model without step() re-runs the prefix (one forward over N
//                     tokens per generated token) and says so in extra_json.
// Each figure: warm-up calls (never timed), then repeated timed calls (at least min_repeats, at
// most repeats, stopping once target_seconds of timed work is reached); median, mean, sample
// standard deviation, min and max of the per-call latency.  Peak memory is reset before the
// warm-up and read after the last call.  Out-of-memory and non-finite outputs are recorded as a
// status; a per-point time budget stops the ladder early and records why.

#include "harness/device.h"
#include "harness/model.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace mixlab {

struct MeasureSettings {
  // The ladder of a phase: decode_seq_lens for decode when given, else seq_lens.
  const std::vector<int64_t>& lengths_for(const std::string& phase) const;
  std::vector<int64_t> seq_lens;
  std::vector<int64_t> decode_seq_lens;  // empty: the decode phase uses seq_lens
  int64_t batch = 1;
  std::vector<std::string> phases = {"forward", "forward_backward", "decode"};
  int64_t warmup = 2;
  int64_t repeats = 10;          // at most
  int64_t min_repeats = 3;       // at least
  double target_seconds = 1.0;   // stop repeating once this much timed work is done
  double time_budget_s = 0;      // per point; 0 = unlimited
  int64_t decode_chunks = 16;    // decode: the generation is timed in this many chunks
  int64_t prefill_new_tokens = 10;  // prefill: greedy tokens generated after the prompt (SCOUT §4.5)
  bool skip_after_oom = true;    // a phase that ran out of memory at N is not tried at N' > N
  std::string device = "cpu";    // resolved
  std::string dtype = "float32"; // resolved
  int64_t seed = 0;              // weights and tokens
  int64_t threads = 0;           // CPU threads while measuring (0: LibTorch's default)
  std::string execution = "auto";  // phases on CUDA: auto | cuda_graph (harness/cuda_graph.h, static_decoder.h) | eager
  // decode: "generate" times the whole generation of N tokens; "spans" times a sample of steps
  // per span of the static decoder and adds them up (docs/decode.md, "Timing by spans")
  std::string decode_timing = "generate";
  static constexpr int64_t kSpanSampleSteps = 64;  // steps per timed sample of a span ("spans")

  static MeasureSettings from_json(const nlohmann::json& resolved_measure);
};

// Validate a spec's "measure" object and fill every default, so the result is the full,
// canonical measure section of a point.  seq_lens may be a list or a range
//   {"from": 256, "to": 65536, "times": 2}  (geometric)   or   {"from": 64, "to": 512, "step": 64}.
// device_kind ("cpu"/"cuda") resolves "dtype": "auto".  Throws ConfigError naming file and path.
nlohmann::json resolve_measure_json(const nlohmann::json& measure, const std::string& device_kind,
                                    const std::string& file, const std::string& path);
std::vector<int64_t> expand_seq_lens(const nlohmann::json& value, const std::string& file, const std::string& path);
const std::vector<std::string>& measure_keys();
const std::vector<std::string>& phase_names();

// Summary statistics of repeated timings, with Google Benchmark's definitions (see measure.cpp).
struct TimingSummary {
  double median = 0, mean = 0, stddev = 0, min = 0, max = 0;
  int64_t repeats = 0;
};
TimingSummary summarize(const std::vector<double>& samples);
double statistics_median(std::vector<double> samples);
double statistics_mean(const std::vector<double>& samples);
double statistics_stddev(const std::vector<double>& samples);  // sample (n-1) standard deviation

// One row of the measurements table.
struct Measurement {
  std::string phase;
  int64_t seq_len = 0;
  int64_t batch = 1;
  std::string status = "ok";  // ok, oom, nonfinite, time_budget, unsupported, error
  std::string error;
  std::optional<TimingSummary> timing;
  std::optional<double> tokens_per_s, flops, tflops_per_s, peak_memory_bytes, state_bytes, measured_state_bytes;
  nlohmann::json extra = nlohmann::json::object();
  // What computed it: "op=kernel" / "op=reference" per op with a CUDA kernel, "library" when only
  // LibTorch's operators ran (core/implementation.h).
  std::string implementation;
  // How the timed calls ran: "cuda_graph" (captured once, replayed) or "eager".
  std::string execution = "eager";
};

// Times `call` repeatedly under the settings' warm-up / repeat / target rules.  `call` runs one
// operation; the timer waits for it to finish.  Returns the per-call latencies in ms.  Between
// calls, `out_of_time` (when given) ends the repeats early, keeping the samples taken (at least
// one), and an interrupt (harness/interrupt.h) throws Interrupted.
std::vector<double> time_repeats(const std::function<void()>& call, const MeasureSettings& settings,
                                 CallTimer& timer, const std::function<bool()>& out_of_time = {});

// Called before each (seq_len, phase) measurement: index counts measurements of this point.
using MeasureObserver = std::function<void(int64_t seq_len, const std::string& phase, size_t index, size_t count)>;

// What a point cut midway (interrupted, killed, out of device time) measured before it was cut:
// those (phase, N) are not measured again, and an out-of-memory among them still stops the longer
// lengths of its phase (skip_after_oom).  Harness/store.h reads it from the database.
struct StoredMeasurements {
  std::set<std::pair<std::string, int64_t>> done;  // (phase, seq_len)
  std::map<std::string, int64_t> oom_at;            // phase -> shortest N that ran out of memory
};

// Called after each measurement, before the next starts: the sweep stores it, so a point cut
// midway keeps the lengths it finished.
using MeasurementSink = std::function<void(const Measurement&)>;

// Measure one model at every sequence length and phase of the settings, except those in `stored`
// (returned rows: only the new measurements).
std::vector<Measurement> measure_model(LanguageModel& model, const MeasureSettings& settings,
                                       const MeasureObserver& observer = {}, const StoredMeasurements& stored = {},
                                       const MeasurementSink& sink = {});

}  // namespace mixlab
