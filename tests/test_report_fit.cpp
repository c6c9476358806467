// Scaling exponents and crossovers: known power laws must come back out of the fit, with and
// without multiplicative noise; crossings must match the analytic crossing of the two laws.

#include "reports/scaling_fit.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

namespace mixlab::reports {
namespace MIXLAB_UNITY_ID {

// y = f(N) · exp(σ·u), u uniform in [-1, 1] from a seeded Mersenne twister (same on every platform).
std::vector<std::pair<double, double>> sample(const std::function<double(double)>& f, int first_power, int last_power,
                                              double sigma, uint32_t seed) {
  std::mt19937 generator(seed);
  std::vector<std::pair<double, double>> points;
  for (int k = first_power; k <= last_power; ++k) {
    const double n = std::ldexp(1.0, k);
    const double u = 2.0 * (static_cast<double>(generator()) / 4294967295.0) - 1.0;
    points.emplace_back(n, f(n) * std::exp(sigma * u));
  }
  return points;
}

TEST(ReportFit, RecoversExactPowerLaws) {
  for (double alpha : {1.0, 1.5, 2.0}) {
    auto fit = fit_upper_range(sample([&](double n) { return 3e-4 * std::pow(n, alpha); }, 8, 16, 0.0, 1));
    ASSERT_TRUE(fit.has_value());
    EXPECT_NEAR(fit->exponent, alpha, 1e-9);
    EXPECT_NEAR(std::exp(fit->log_prefactor), 3e-4, 1e-12);
    EXPECT_NEAR(fit->r2, 1.0, 1e-12);
  }
}

TEST(ReportFit, RecoversExponentsUnderMultiplicativeNoise) {
  // 5% multiplicative noise over 2^8 .. 2^16: the fitted slope stays within 0.03 of the truth.
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    for (double alpha : {1.0, 1.5, 2.0}) {
      auto fit = fit_upper_range(sample([&](double n) { return 0.02 * std::pow(n, alpha); }, 8, 16, 0.05, seed));
      ASSERT_TRUE(fit.has_value());
      EXPECT_NEAR(fit->exponent, alpha, 0.03) << "alpha " << alpha << " seed " << seed;
      EXPECT_GT(fit->r2, 0.99);
      EXPECT_LT(fit->r2, 1.0);
    }
  }
}

TEST(ReportFit, NLogNHasTheEffectiveExponentOfItsRange) {
  // d log(N ln N) / d log N = 1 + 1/ln N: the fit over 2^12 .. 2^16 lies between the local slopes
  // at its ends and near the local slope at the geometric middle, 2^14.
  auto fit = fit_upper_range(sample([](double n) { return n * std::log(n); }, 8, 16, 0.0, 1));
  ASSERT_TRUE(fit.has_value());
  EXPECT_EQ(fit->n_min, 4096);
  EXPECT_EQ(fit->n_max, 65536);
  EXPECT_GT(fit->exponent, 1.0 + 1.0 / std::log(65536.0));
  EXPECT_LT(fit->exponent, 1.0 + 1.0 / std::log(4096.0));
  EXPECT_NEAR(fit->exponent, 1.0 + 1.0 / std::log(16384.0), 0.002);
  auto noisy = fit_upper_range(sample([](double n) { return n * std::log(n); }, 8, 16, 0.03, 7));
  EXPECT_NEAR(noisy->exponent, 1.10, 0.03);
}

TEST(ReportFit, UpperRangeRuleKeepsTheUpperHalfAtLeastFour) {
  // A fixed overhead dominates short lengths: y = 50 + 1e-4·N².  9 points → the upper 5 are fitted.
  auto points = sample([](double n) { return 50.0 + 1e-4 * n * n; }, 8, 16, 0.0, 1);
  auto upper = fit_upper_range(points);
  auto all = fit_power_law(points);
  ASSERT_TRUE(upper && all);
  EXPECT_EQ(upper->count, 5);
  EXPECT_EQ(upper->n_min, 4096);
  EXPECT_NEAR(upper->exponent, 2.0, 0.02);
  EXPECT_LT(all->exponent, 1.9);
  // 6 points → 4 fitted (at least 4); 4 points → all 4; 3 points → no fit (R² ≈ 1 whatever the data).
  EXPECT_EQ(fit_upper_range(sample([](double n) { return n; }, 8, 13, 0, 1))->count, 4);
  EXPECT_EQ(fit_upper_range(sample([](double n) { return n; }, 8, 11, 0, 1))->count, 4);
  EXPECT_FALSE(fit_upper_range(sample([](double n) { return n; }, 8, 10, 0, 1)).has_value());
}

TEST(ReportFit, IgnoresUnusablePoints) {
  std::vector<std::pair<double, double>> points = {{256, 1}, {512, 2}, {1024, NAN}, {2048, 8}, {4096, 0}, {8192, 32}};
  auto fit = fit_power_law(points);
  ASSERT_TRUE(fit);
  EXPECT_EQ(fit->count, 4);
  EXPECT_NEAR(fit->exponent, 1.0, 1e-12);
}

TEST(ReportFit, CrossoverOfTwoPowerLawsIsAnalytic) {
  // 2e-5·N² = 6e-4·N^1.5  ⇔  N* = (6e-4 / 2e-5)² = 900; log-log interpolation is exact for power laws.
  auto full = sample([](double n) { return 2e-5 * n * n; }, 8, 13, 0, 1);
  auto scout = sample([](double n) { return 6e-4 * std::pow(n, 1.5); }, 8, 13, 0, 1);
  auto crossings = find_crossovers("full", full, "scout", scout, /*higher_is_better=*/false);
  ASSERT_EQ(crossings.size(), 1u);
  EXPECT_NEAR(crossings[0].seq_len, 900.0, 1e-6);
  EXPECT_EQ(crossings[0].better_label, "scout");  // lower latency above N*
  EXPECT_EQ(crossings[0].worse_label, "full");
  // For a higher-is-better metric the same curves mean the opposite.
  auto reversed = find_crossovers("full", full, "scout", scout, true);
  ASSERT_EQ(reversed.size(), 1u);
  EXPECT_EQ(reversed[0].better_label, "full");
}

TEST(ReportFit, CrossoverOnDifferentGridsNearTheAnalyticCrossing) {
  // a = N ln N, b = 0.05·N^1.5 on different grids (one crossing, near 5·10⁴); the reference
  // crossing by bisection.
  auto f = [](double n) { return n * std::log(n); };
  auto g = [](double n) { return 0.05 * std::pow(n, 1.5); };
  std::vector<std::pair<double, double>> a, b;
  for (double n = 100; n <= 1e6; n *= 1.7) a.emplace_back(n, f(n));
  for (double n = 128; n <= 1e6; n *= 2) b.emplace_back(n, g(n));
  double low = 100, high = 1e6;
  for (int i = 0; i < 200; ++i) {
    const double mid = std::sqrt(low * high);
    ((f(mid) - g(mid)) * (f(low) - g(low)) > 0 ? low : high) = mid;
  }
  auto crossings = find_crossovers("nlogn", a, "power", b, false);
  ASSERT_EQ(crossings.size(), 1u);
  EXPECT_NEAR(crossings[0].seq_len / low, 1.0, 0.02);
  EXPECT_EQ(crossings[0].better_label, "nlogn");
}

TEST(ReportFit, NoiseAroundATieIsNotACrossing) {
  // Two flat curves within ±2% of each other swap order at random: no crossing.  A clear
  // crossing through a near-tie at one length is still found once, where the sign changes.
  auto a = sample([](double) { return 1.0; }, 6, 12, 0.02, 3);
  auto b = sample([](double) { return 1.0; }, 6, 12, 0.02, 4);
  EXPECT_TRUE(find_crossovers("a", a, "b", b, false).empty());
  EXPECT_FALSE(find_crossovers("a", a, "b", b, false, 1.0).empty());  // without the threshold, noise "crosses"
  std::vector<std::pair<double, double>> rising = {{1, 0.5}, {2, 1.01}, {4, 2}}, flat = {{1, 1}, {2, 1}, {4, 1}};
  auto crossings = find_crossovers("rising", rising, "flat", flat, false);
  ASSERT_EQ(crossings.size(), 1u);
  EXPECT_EQ(crossings[0].better_label, "flat");
  EXPECT_GT(crossings[0].seq_len, 1.9);
  EXPECT_LT(crossings[0].seq_len, 2.0);
}

TEST(ReportFit, NoCrossingAndTwoCrossings) {
  auto low = sample([](double n) { return n; }, 8, 14, 0, 1);
  auto high = sample([](double n) { return 2 * n; }, 8, 14, 0, 1);
  EXPECT_TRUE(find_crossovers("low", low, "high", high, false).empty());
  // A bump: b crosses a upward then back down.
  std::vector<std::pair<double, double>> a = {{1, 1}, {2, 1}, {4, 1}, {8, 1}};
  std::vector<std::pair<double, double>> b = {{1, 0.5}, {2, 2}, {4, 2}, {8, 0.5}};
  auto crossings = find_crossovers("a", a, "b", b, false);
  ASSERT_EQ(crossings.size(), 2u);
  EXPECT_NEAR(crossings[0].seq_len, std::sqrt(2.0), 1e-12);  // halfway in log N between 1 and 2
  EXPECT_EQ(crossings[0].better_label, "a");
  EXPECT_NEAR(crossings[1].seq_len, std::pow(2.0, 2.5), 1e-12);
  EXPECT_EQ(crossings[1].better_label, "b");
}

}  // namespace mixlab::reports

}  // namespace
