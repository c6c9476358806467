#include "reports/evidence.h"

#include "reports/text.h"

#include <cmath>
#include <cstdio>
#include <map>

namespace mixlab::reports {

namespace {
bool is_memory(const Metric& metric) {
  return metric.column == "peak_memory_bytes" || metric.column == "measured_state_bytes";
}
}  // namespace

bool below_resolution(const Metric& metric, const MetricRow& row) {
  if (row.status != "ok" || !std::isfinite(row.value)) return false;
  if (metric.column == "median_ms") return row.value < kTimerResolutionMs;
  if (is_memory(metric)) return row.value <= 0 || (row.device != "cuda" && row.value < kCpuMemoryResolutionBytes);
  return false;
}

double relative_spread(const MetricRow& row) {
  if (!std::isfinite(row.spread) || !(row.value > 0)) return 0.0;
  return row.spread / row.value;
}

bool too_noisy(const MetricRow& row) { return relative_spread(row) > kNoisyCv; }

std::vector<MetricRow> resolved_rows(const Metric& metric, const std::vector<MetricRow>& rows) {
  std::vector<MetricRow> kept;
  for (const auto& row : rows)
    if (row.status == "ok" && std::isfinite(row.value) && !below_resolution(metric, row)) kept.push_back(row);
  return kept;
}

bool better_beyond_noise(const Metric& metric, const MetricRow& better, const MetricRow& worse) {
  if (!(better.value > 0 && worse.value > 0)) return false;
  const double log_ratio = metric.higher_is_better ? std::log(better.value / worse.value)
                                                   : std::log(worse.value / better.value);
  const double cv_b = relative_spread(better), cv_w = relative_spread(worse);
  return log_ratio >= std::max(std::log(1.05), 2.0 * std::sqrt(cv_b * cv_b + cv_w * cv_w));
}

std::vector<std::string> measurement_quality_notes(const Metric& metric, const std::vector<MetricRow>& rows) {
  std::map<std::string, std::string> noisy, unresolved;  // label -> "N = 512 (CV 110%), ..."
  for (const auto& row : rows) {
    if (row.status != "ok") continue;
    const std::string n = format_length(static_cast<double>(row.seq_len));
    if (below_resolution(metric, row)) {
      auto& text = unresolved[row.label];
      text += (text.empty() ? "N = " : ", ") + n;
    } else if (too_noisy(row)) {
      char cv[32];
      std::snprintf(cv, sizeof cv, "%.0f%%", 100.0 * relative_spread(row));
      auto& text = noisy[row.label];
      text += (text.empty() ? "N = " : ", ") + n + " (CV " + cv + ")";
    }
  }
  std::vector<std::string> notes;
  auto line = [&](const std::map<std::string, std::string>& by_label, const std::string& what) {
    if (by_label.empty()) return;
    std::string text;
    for (const auto& [label, items] : by_label) text += (text.empty() ? "" : "; ") + label + " at " + items;
    notes.push_back("- " + metric.title + ", " + what + ": " + text + ".");
  };
  char noisy_caption[96];
  std::snprintf(noisy_caption, sizeof noisy_caption, "too noisy to rank (coefficient of variation above %.0f%%)",
                100.0 * kNoisyCv);
  line(noisy, noisy_caption);
  line(unresolved, metric.column == "median_ms"
                       ? "below the timer's resolution (under 1 µs)"
                       : "below the memory probe's resolution (on the CPU, peak-RSS growth under 1 MiB; not "
                         "compared)");
  return notes;
}

}  // namespace mixlab::reports
