#pragma once
// Fitted scaling exponents and crossover lengths.
//
// Power law:   y(N) = c · N^α   ⇔   log y = log c + α · log N.
// α and log c are the least-squares line through (log N_i, log y_i) (solved with Eigen), and
//   R² = 1 − Σ (log y_i − ŷ_i)² / Σ (log y_i − mean log y)²     (on the log-log points fitted).
//
// Upper-range rule (fit_upper_range): sort the measured lengths, keep the upper half of the
// points, ⌈n/2⌉, but at least 4; fewer than 4 measured points give no fit.  The low end of a
// sweep is dominated by fixed overheads (kernel launches, the MLP), the upper end shows the
// asymptotic exponent.  A cost of N·log N has no single exponent: over [N_a, N_b] the fit gives
// its effective exponent, between 1 + 1/ln N_b and 1 + 1/ln N_a (the local slope
// d log(N ln N) / d log N = 1 + 1/ln N).
//
// Crossover: where two configurations' curves cross, with each curve interpolated linearly in
// log-log between its measured points; found on the union of both grids over their common range:
//   d(N) = log y_A(N) − log y_B(N),  d(N_1)·d(N_2) < 0  ⇒
//   log N* = log N_1 + d(N_1) / (d(N_1) − d(N_2)) · (log N_2 − log N_1),
// kept only where |d| ≥ log 1.05 at the nearest grid points on both sides that differ clearly.

#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mixlab::reports {

struct PowerLawFit {
  double exponent = 0;      // α
  double log_prefactor = 0; // log c (natural log)
  double r2 = 0;
  double n_min = 0, n_max = 0;
  int count = 0;            // points fitted
  // 95% bootstrap interval of α (fit_with_interval); NaN when not computed.
  double ci_low = std::numeric_limits<double>::quiet_NaN(), ci_high = std::numeric_limits<double>::quiet_NaN();
};

// Least squares over all given (N, y) points with N, y > 0; nullopt for fewer than 2 usable points.
std::optional<PowerLawFit> fit_power_law(const std::vector<std::pair<double, double>>& points);

// The rule above; nullopt for fewer than kMinimumFitPoints usable points.  Three points pin a
// line through two parameters with one degree of freedom left: R² is near 1 whatever the data,
// so a fit needs at least four lengths.
std::optional<PowerLawFit> fit_upper_range(std::vector<std::pair<double, double>> points);
constexpr int kMinimumFitPoints = 4;

// Bootstrap interval of the exponent (Efron & Tibshirani, An Introduction to the Bootstrap, 1993,
// §13.3 percentile interval):  each of `resamples` replicates draws the fitted lengths with
// replacement and, at each drawn length, one of its timed repeats (its value when no repeats are
// stored), and fits α* by least squares in log-log; the interval is the 2.5th and 97.5th
// percentiles of α*.  Replicates with a single distinct length are redrawn.  Deterministic (fixed
// seed).  fit_with_interval = fit_upper_range + this interval over the lengths it kept.
// `repeats[i]` belongs to `points[i]` (may be empty or shorter than points).
constexpr int kBootstrapResamples = 2000;
std::optional<PowerLawFit> fit_with_interval(const std::vector<std::pair<double, double>>& points,
                                             const std::vector<std::vector<double>>& repeats,
                                             int resamples = kBootstrapResamples);

// An exponent is reported as a finding only when its 95% interval is at most this wide (it then
// tells a linear cost from a quadratic one, ±0.25 around the estimate).
constexpr double kMaxExponentInterval = 0.5;
bool exponent_supported(const PowerLawFit& fit);

struct Crossover {
  std::string better_label;  // better above the crossing (`faster_label` in the crossovers table)
  std::string worse_label;   // better below it
  double seq_len = 0;        // N*
};

// All crossings of two measured curves (each sorted by N, y > 0).  `higher_is_better` says
// which side of the crossing is "better" (throughput: higher; latency, memory: lower).
// Timing noise makes near-equal curves swap order at random: a crossing counts only where the
// curves differ by at least `min_ratio` (default 5%) at measured lengths on both sides of it.
// With `noise_a` / `noise_b` (per point of a / b: the relative standard deviation sd/value of
// its repeats), the curves must also differ beyond noise: |d| ≥ 2·sqrt(cv_A² + cv_B²) at those
// lengths (the 95% interval of the log ratio excludes 0; a length between measured points takes
// the larger cv of its neighbours).
constexpr double kCrossoverMinRatio = 1.05;
std::vector<Crossover> find_crossovers(const std::string& label_a, const std::vector<std::pair<double, double>>& a,
                                       const std::string& label_b, const std::vector<std::pair<double, double>>& b,
                                       bool higher_is_better, double min_ratio = kCrossoverMinRatio,
                                       const std::vector<double>& noise_a = {}, const std::vector<double>& noise_b = {});

// log-log interpolation of a sorted curve at N inside its range (nullopt outside).
std::optional<double> interpolate_log_log(const std::vector<std::pair<double, double>>& curve, double n);

}  // namespace mixlab::reports
