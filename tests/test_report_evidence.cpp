// What a finding needs (reports/evidence.h, reports/scaling_fit.h): four lengths for a fit, a
// bootstrap interval that covers the true exponent and is wide when the data are noisy,
// crossovers and "fastest" claims only beyond noise, values below the instrument's resolution
// named and never bolded, error bars and repeats in the timing plots, plots before tables.

#include "reports/evidence.h"
#include "reports/report.h"
#include "reports/scaling_fit.h"
#include "report_fixture.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

namespace mixlab::reports {
namespace MIXLAB_UNITY_ID {

using fixture::slurp;

// y = 3·N^α at the given lengths; `cv` multiplicative log-normal noise on each of `repeats`
// repeats (seeded); the point's value is the median of its repeats.
struct Curve {
  std::vector<std::pair<double, double>> points;
  std::vector<std::vector<double>> repeats;
};
Curve power_law(double alpha, std::vector<double> lengths, double cv, int repeats, uint64_t seed) {
  std::mt19937_64 random(seed);
  std::normal_distribution<double> z(0.0, 1.0);
  Curve curve;
  for (double n : lengths) {
    std::vector<double> values;
    for (int r = 0; r < repeats; ++r) values.push_back(3.0 * std::pow(n, alpha) * std::exp(cv * z(random)));
    std::vector<double> sorted = values;
    std::sort(sorted.begin(), sorted.end());
    curve.points.emplace_back(n, sorted[sorted.size() / 2]);
    curve.repeats.push_back(values);
  }
  return curve;
}

TEST(ReportEvidence, AFitNeedsFourLengths) {
  const auto three = power_law(1.0, {256, 512, 1024}, 0.0, 1, 1);
  EXPECT_FALSE(fit_with_interval(three.points, three.repeats).has_value());
  const auto four = power_law(1.0, {256, 512, 1024, 2048}, 0.0, 1, 1);
  ASSERT_TRUE(fit_with_interval(four.points, four.repeats).has_value());
}

TEST(ReportEvidence, BootstrapIntervalCoversTheExponentAndNarrowsWithoutNoise) {
  // Noise-free: every resample lies on the line, the interval is the exponent itself.
  const auto exact = power_law(1.5, {256, 512, 1024, 2048, 4096}, 0.0, 5, 2);
  const auto fit = fit_with_interval(exact.points, exact.repeats);
  ASSERT_TRUE(fit.has_value());
  EXPECT_NEAR(fit->ci_low, 1.5, 1e-9);
  EXPECT_NEAR(fit->ci_high, 1.5, 1e-9);
  EXPECT_TRUE(exponent_supported(*fit));
  // 5% noise over 6 lengths: the interval holds the true 1.5 and is narrow enough to state.
  const auto mild = power_law(1.5, {128, 256, 512, 1024, 2048, 4096, 8192, 16384}, 0.05, 10, 3);
  const auto mild_fit = fit_with_interval(mild.points, mild.repeats);
  ASSERT_TRUE(mild_fit.has_value());
  EXPECT_LT(mild_fit->ci_low, 1.5);
  EXPECT_GT(mild_fit->ci_high, 1.5);
  EXPECT_TRUE(exponent_supported(*mild_fit));
  // 100% noise over 4 close lengths (a shared 2-core machine): no exponent is stated.
  const auto noisy = power_law(-0.4, {64, 128, 256, 512}, 1.0, 5, 4);
  const auto noisy_fit = fit_with_interval(noisy.points, noisy.repeats);
  ASSERT_TRUE(noisy_fit.has_value());
  EXPECT_GT(noisy_fit->ci_high - noisy_fit->ci_low, kMaxExponentInterval);
  EXPECT_FALSE(exponent_supported(*noisy_fit));
}

TEST(ReportEvidence, CrossoversWithinNoiseAreNotCounted) {
  // A is 10% slower below N = 1000 and 10% faster above it.
  const std::vector<std::pair<double, double>> a = {{256, 1.1}, {512, 1.1}, {2048, 0.9}, {4096, 0.9}};
  const std::vector<std::pair<double, double>> b = {{256, 1.0}, {512, 1.0}, {2048, 1.0}, {4096, 1.0}};
  EXPECT_EQ(find_crossovers("A", a, "B", b, false).size(), 1u);
  // Repeats that scatter by 5% of the value: still a crossing (10% > 2·sqrt(2)·3%? no: 3% each).
  EXPECT_EQ(find_crossovers("A", a, "B", b, false, kCrossoverMinRatio, {0.03, 0.03, 0.03, 0.03}, {0.03, 0.03, 0.03, 0.03})
                .size(),
            1u);
  // Repeats that scatter by 30%: the 10% differences are noise.
  EXPECT_TRUE(find_crossovers("A", a, "B", b, false, kCrossoverMinRatio, {0.3, 0.3, 0.3, 0.3}, {0.3, 0.3, 0.3, 0.3})
                  .empty());
}

TEST(ReportEvidence, ResolutionOfTheTimerAndTheMemoryProbe) {
  const Metric& memory = metric_by_name("peak_memory");
  const Metric& latency = metric_by_name("fwd_ms");
  MetricRow row{"p", "x", 128, "ok", 0.0};
  row.device = "cpu";
  EXPECT_TRUE(below_resolution(memory, row));  // CPU peak-RSS growth 0: the allocator reused pages
  row.value = 512 * 1024;
  EXPECT_TRUE(below_resolution(memory, row));
  row.value = 8 * 1024 * 1024;
  EXPECT_FALSE(below_resolution(memory, row));
  row.device = "cuda";
  row.value = 512 * 1024;
  EXPECT_FALSE(below_resolution(memory, row));  // the caching allocator counts bytes
  row.value = 0.0005;
  EXPECT_TRUE(below_resolution(latency, row));
  row.value = 0.5;
  EXPECT_FALSE(below_resolution(latency, row));
}

// A CPU study as the quickstart makes one: 4 lengths, one configuration with 100% noise, one
// with peak memory 0 at the short lengths.
void fill_noisy_study(fixture::Fixture& db) {
  db.add_point("steady", "steady", "attention,mlp");
  db.add_point("shaky", "shaky", "swa,mlp");
  std::mt19937_64 random(7);
  std::normal_distribution<double> z(0.0, 1.0);
  for (int64_t n : {64, 128, 256, 512}) {
    const double x = static_cast<double>(n);
    db.add_measurement("steady", "forward_backward", n, "ok", 0.01 * x, NAN, 40.0 * x * x);
    db.add_measurement("shaky", "forward_backward", n, "ok", 0.012 * x, NAN, n <= 128 ? 0.0 : 60.0 * x * x);
    std::vector<double> steady, shaky;
    for (int r = 0; r < 8; ++r) {
      steady.push_back(0.01 * x * (1.0 + 0.01 * z(random)));
      shaky.push_back(0.012 * x * std::exp(1.0 * z(random)));
    }
    db.add_repeats("steady", "forward_backward", n, steady);
    db.add_repeats("shaky", "forward_backward", n, shaky);
  }
}

TEST(ReportEvidence, FindingsOnlyWhereTheDataSupportThem) {
  MIXLAB_REQUIRE_GNUPLOT();
  fixture::TempDir dir("evidence");
  {
    fixture::Fixture db(dir.path("n.db"));
    fill_noisy_study(db);
  }
  ReportOptions options;
  options.db_path = dir.path("n.db");
  options.out_dir = dir.path("report");
  options.formats = {"png"};
  const ReportResult result = write_report(options);
  const std::string index = slurp(result.index_md);
  const std::string findings = index.substr(0, index.find("\n## ", index.find("## Findings") + 4));
  // The steady configuration's exponent is stated with its interval; the shaky one's is not.
  EXPECT_NE(findings.find("steady ∝ N^1.00 (95% CI"), std::string::npos) << findings;
  EXPECT_EQ(findings.find("shaky ∝ N^"), std::string::npos) << findings;
  EXPECT_NE(findings.find("No exponent is given where its 95% interval is wider than 0.50: shaky"), std::string::npos)
      << findings;
  // The noisy measurements and the memory values below resolution are named.
  EXPECT_NE(findings.find("too noisy to rank (coefficient of variation above 25%): shaky at N = 64"), std::string::npos)
      << findings;
  EXPECT_NE(findings.find("below the memory probe's resolution"), std::string::npos) << findings;
  // steady is 20% faster but shaky's noise swallows that: no fastest configuration is named.
  EXPECT_EQ(findings.find("Fastest configuration per length"), std::string::npos) << findings;
  EXPECT_NE(findings.find("differ by less than their noise"), std::string::npos) << findings;
  // Peak memory 0 is not bolded as the best value.
  const std::string memory = slurp(options.out_dir + "/tables/peak_memory.md");
  EXPECT_EQ(memory.find("**0"), std::string::npos) << memory;
  // Plots before tables.
  EXPECT_LT(index.find("![" ), index.find("| configuration |"));
  // The timing plot has error bars and the repeats.
  EXPECT_NE(slurp(options.out_dir + "/plots/scaling_fwd_bwd_ms.gp").find("yerrorlines"), std::string::npos);
  const std::string repeats = slurp(options.out_dir + "/plots/scaling_fwd_bwd_ms_samples.dat");
  EXPECT_EQ(std::count(repeats.begin(), repeats.end(), '\n'), 1 + 2 * (1 + 4 * 8) + 2) << repeats;
  EXPECT_FALSE(std::filesystem::exists(options.out_dir + "/plots/scaling_fwd_bwd_ms.gnuplot.log"));
}

}  // namespace mixlab::reports

}  // namespace
