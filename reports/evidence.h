#pragma once
// What the measurements can support: which values are below the resolution of the instrument
// that took them, which are too noisy to rank, and whether one configuration is better than
// another beyond noise (docs/reports.md, "What a finding needs").
//
//   coefficient of variation   cv = sd / value of a timed measurement's repeats
//   too noisy                  cv > kNoisyCv
//   below resolution           latency < kTimerResolutionMs (one timer tick and call overhead),
//                              peak / held memory on the CPU < kCpuMemoryResolutionBytes (the
//                              probe is peak-RSS growth: the allocator reuses freed pages, so
//                              small working sets read 0), or memory ≤ 0 on any device
//   better beyond noise        log(y_worse / y_better) ≥ max(log 1.05, 2·sqrt(cv_b² + cv_w²))
//                              (the 95% interval of the log ratio excludes 0)

#include "reports/database.h"
#include "reports/metrics.h"

#include <string>
#include <vector>

namespace mixlab::reports {

constexpr double kNoisyCv = 0.25;
constexpr double kTimerResolutionMs = 1e-3;
constexpr double kCpuMemoryResolutionBytes = 1024.0 * 1024.0;

bool below_resolution(const Metric& metric, const MetricRow& row);
double relative_spread(const MetricRow& row);  // cv; 0 when the row has no stored spread
bool too_noisy(const MetricRow& row);

// The ok rows a finding may use: failed rows and values below resolution left out.
std::vector<MetricRow> resolved_rows(const Metric& metric, const std::vector<MetricRow>& rows);

// Whether `better` beats `worse` on the metric beyond noise (and by at least 5%).
bool better_beyond_noise(const Metric& metric, const MetricRow& better, const MetricRow& worse);

// Report lines naming the too-noisy measurements and those below resolution, per configuration
// ("- Forward + backward latency, too noisy (CV > 25%): swa at N = 512 (CV 110%)."); empty when
// every measurement is fine.
std::vector<std::string> measurement_quality_notes(const Metric& metric, const std::vector<MetricRow>& rows);

}  // namespace mixlab::reports
