// The findings section: what the measurements support, in sentences (docs/reports.md, "What a
// finding needs"): exponents whose interval pins them down, crossovers, the fastest configuration
// per length where it wins beyond noise, failures, measurements not to lean on, failed points.

#include "reports/sections/sections.h"

#include "reports/evidence.h"
#include "reports/text.h"

#include <algorithm>

namespace mixlab::reports {

namespace {

// Many configurations cross many times: the findings name the first few, the table has all.
constexpr size_t kCrossoversInFindings = 12;

// The metrics the findings speak of.  Forward latency repeats what forward + backward latency
// says; it is named only without the latter.
bool headline(const ReportContext& context, const std::string& name) {
  const bool have_training_latency = context.rows_by_metric.count("fwd_bwd_ms") > 0;
  return name == "fwd_bwd_ms" || (name == "fwd_ms" && !have_training_latency) || name == "decode_ms" ||
         name == "peak_memory" || name == "state_bytes";
}

// "becomes faster than B", "needs less memory than B", "overtakes B": said of the configuration
// that is better above the crossing.
std::string verb_phrase(const Metric& metric, const std::string& worse) {
  if (metric.unit == "ms") return "becomes faster than " + worse;
  if (metric.unit == "MiB") return "needs less memory than " + worse;
  if (metric.higher_is_better) return "overtakes " + worse;
  return "needs less than " + worse;
}

// An exponent is a finding only when its bootstrap interval pins it down; the others are named
// as not supported, with their interval.
void exponent_findings(const ReportContext& context, Section& findings) {
  std::string unsupported;
  for (const auto& metric : metrics()) {
    if (!headline(context, metric.name)) continue;
    std::string line;
    for (const auto& record : context.result.fits) {
      if (record.metric != &metric) continue;
      const std::string range = "N " + format_length(record.fit.n_min) + "–" + format_length(record.fit.n_max);
      if (exponent_supported(record.fit))
        line += (line.empty() ? "" : "; ") + record.label + " ∝ N^" + exponent_text(record.fit.exponent) + " (95% CI " +
                interval_text(record.fit) + ", " + range + ")";
      else
        unsupported += (unsupported.empty() ? "" : "; ") + record.label + " " + lowercase_first(metric.title) +
                       " (95% CI " + interval_text(record.fit) + ")";
    }
    if (!line.empty()) findings.paragraphs.push_back("- " + metric.title + ": " + line + ".");
  }
  if (!unsupported.empty())
    findings.paragraphs.push_back("- No exponent is given where its 95% interval is wider than " +
                                  exponent_text(kMaxExponentInterval) + ": " + unsupported + ".");
}

void crossover_findings(const ReportContext& context, Section& findings) {
  size_t listed = 0, left = 0;
  for (const auto& record : context.result.crossovers) {
    if (!headline(context, record.metric->name) || record.metric->name == "state_bytes") continue;
    if (listed == kCrossoversInFindings) {
      ++left;
      continue;
    }
    ++listed;
    findings.paragraphs.push_back("- " + record.crossover.better_label + " " +
                                  verb_phrase(*record.metric, record.crossover.worse_label) + " at N ≈ " +
                                  format_length(record.crossover.seq_len) + " (" + lowercase_first(record.metric->title) +
                                  ").");
  }
  if (left > 0)
    findings.paragraphs.push_back("- … and " + std::to_string(left) + " more crossovers: see crossovers.md (all metrics).");
}

// The fastest configuration at each length, named only when it beats the runner-up beyond
// noise, and each configuration's failed lengths; from the first of fwd_bwd_ms / fwd_ms measured.
void latency_findings(const ReportContext& context, Section& findings) {
  for (const char* name : {"fwd_bwd_ms", "fwd_ms"}) {
    const auto found = context.rows_by_metric.find(name);
    if (found == context.rows_by_metric.end()) continue;
    const Metric& metric = metric_by_name(name);
    std::map<int64_t, std::vector<const MetricRow*>> by_length;  // ok rows above resolution
    std::map<std::string, std::vector<std::string>> failures;    // label -> "OOM at 32k"
    const auto resolved = resolved_rows(metric, found->second);
    for (const auto& row : found->second)
      if (row.status != "ok")
        failures[row.label].push_back(status_caption(row.status) + " at N = " + format_length(static_cast<double>(row.seq_len)));
    for (const auto& row : resolved) by_length[row.seq_len].push_back(&row);
    std::string line, ties;
    for (auto& [n, list] : by_length) {
      std::sort(list.begin(), list.end(), [](const MetricRow* a, const MetricRow* b) { return a->value < b->value; });
      const std::string length = format_length(static_cast<double>(n));
      if (list.size() == 1 || better_beyond_noise(metric, *list[0], *list[1]))
        line += (line.empty() ? "" : "; ") + length + ": " + list[0]->label + " (" + format_number(list[0]->value) + " ms)";
      else
        ties += (ties.empty() ? "" : "; ") + length + ": " + list[0]->label + " and " + list[1]->label;
    }
    if (!line.empty())
      findings.paragraphs.push_back("- Fastest configuration per length (" + lowercase_first(metric.title) + "): " + line + ".");
    if (!ties.empty())
      findings.paragraphs.push_back("- No fastest configuration where the two fastest differ by less than their noise (" +
                                    lowercase_first(metric.title) + "): " + ties + ".");
    for (const auto& [label, list] : failures) {
      std::string joined;
      for (const auto& item : list) joined += (joined.empty() ? "" : ", ") + item;
      findings.paragraphs.push_back("- " + label + " failed (" + lowercase_first(metric.title) + "): " + joined + ".");
    }
    return;
  }
}

}  // namespace

Section findings_section(ReportContext& context) {
  Section findings{"Findings", {}, {}, {}};
  if (context.rows_by_metric.empty() && context.points.empty())
    findings.paragraphs.push_back("The database holds no points" +
                                  std::string(context.options.filter.empty() ? "." : " matching the filter."));
  exponent_findings(context, findings);
  crossover_findings(context, findings);
  latency_findings(context, findings);
  // Measurements a reader should not lean on.
  for (const auto& metric : metrics()) {
    const auto found = context.rows_by_metric.find(metric.name);
    if (found == context.rows_by_metric.end() || !headline(context, metric.name)) continue;
    for (const auto& note : measurement_quality_notes(metric, found->second)) findings.paragraphs.push_back(note);
  }
  for (const auto& point : context.points)
    if (point.status == "failed")
      findings.paragraphs.push_back("- " + point.label + ": the point failed" +
                                    (point.error.empty() ? std::string(".") : ": " + point.error));
  return findings;
}

}  // namespace mixlab::reports
