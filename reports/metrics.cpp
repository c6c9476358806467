// The validated list of report metrics.

#include "reports/metrics.h"

#include "reports/database.h"

namespace mixlab::reports {

const std::vector<Metric>& metrics() {
  constexpr double kMiB = 1.0 / (1024.0 * 1024.0);
  // name, phase, column, title, unit, scale, higher_is_better, scales_with_length
  static const std::vector<Metric> list = {
      {"fwd_ms", "forward", "median_ms", "Forward latency", "ms", 1.0, false, true},
      {"fwd_bwd_ms", "forward_backward", "median_ms", "Forward + backward latency", "ms", 1.0, false, true},
      {"decode_ms", "decode", "median_ms", "Decode step latency", "ms", 1.0, false, true},
      {"tokens_per_s", "forward", "tokens_per_s", "Forward throughput", "tokens/s", 1.0, true, true},
      {"fwd_bwd_tokens_per_s", "forward_backward", "tokens_per_s", "Forward + backward throughput", "tokens/s", 1.0, true, true},
      {"decode_tokens_per_s", "decode", "tokens_per_s", "Decode throughput", "tokens/s", 1.0, true, true},
      {"generate_tokens_per_s", "decode", "extra.generate_tokens_per_s", "Generation throughput (batch x N / wall time)",
       "tokens/s", 1.0, true, true},
      {"decode_peak_memory", "decode", "peak_memory_bytes", "Peak memory, decode", "MiB", kMiB, false, true},
      {"prefill_ms", "prefill", "median_ms", "Prefill latency (prompt + new tokens)", "ms", 1.0, false, true},
      {"prefill_peak_memory", "prefill", "peak_memory_bytes", "Peak memory, prefill", "MiB", kMiB, false, true},
      {"tflops", "forward", "tflops_per_s", "Achieved forward TFLOP/s", "TFLOP/s", 1.0, true, true},
      {"fwd_bwd_tflops", "forward_backward", "tflops_per_s", "Achieved forward + backward TFLOP/s", "TFLOP/s", 1.0, true, true},
      {"flops", "forward", "flops", "Analytic forward FLOPs", "GFLOP", 1e-9, false, true},
      {"peak_memory", "forward_backward", "peak_memory_bytes", "Peak memory, forward + backward", "MiB", kMiB, false, true},
      {"fwd_peak_memory", "forward", "peak_memory_bytes", "Peak memory, forward", "MiB", kMiB, false, true},
      {"state_bytes", "", "state_bytes", "Inference state (analytic)", "MiB", kMiB, false, true},
      {"measured_state_bytes", "decode", "measured_state_bytes", "Decode state held (measured)", "MiB", kMiB, false, true},
      {"params", "points", "parameters", "Parameters", "M", 1e-6, false, false},
  };
  return list;
}

std::string metric_names_text() {
  std::string text;
  for (const auto& metric : metrics()) text += (text.empty() ? "" : ", ") + metric.name;
  return text;
}

const Metric& metric_by_name(const std::string& name) {
  for (const auto& metric : metrics())
    if (metric.name == name) return metric;
  throw ReportError("unknown metric '" + name + "'; valid metrics: " + metric_names_text());
}

}  // namespace mixlab::reports
