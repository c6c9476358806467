#pragma once
// Fitted scaling exponents and crossover lengths.
//
// Power law:   y(N) = c · N^α   ⇔   log y = log c + α · log N.
// α and log c are the least-squares line through (log N_i, log y_i) (solved with Eigen), and
//   R² = 1 − Σ (log y_i − ŷ_i)² / Σ (log y_i − mean log y)²     (on the log-log points fitted).
//
// Upper-range rule (fit_upper_range): sort the measured lengths, keep the upper half of the
// points, ⌈n/2⌉, but at least 3; fewer than 3 measured points give no fit.  The low end of a
// sweep is dominated by fixed overheads (kernel launches, the MLP), the upper end shows the
// asymptotic exponent.  A cost of N·log N has no single exponent: over [N_a, N_b] the fit gives
// its effective exponent, between 1 + 1/ln N_b and 1 + 1/ln N_a (the local slope
// d log(N ln N) / d log N = 1 + 1/ln N).
//
// Crossover: where two configurations' curves cross, with each curve interpolated linearly in
// log-log between its measured points; found on the union of both grids over their common range:
//   d(N) = log y_A(N) − log y_B(N),  d(N_1)·d(N_2) < 0  ⇒
//   log N* = log N_1 + d(N_1) / (d(N_1) − d(N_2)) · (log N_2 − log N_1).

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
};

// Least squares over all given (N, y) points with N, y > 0; nullopt for fewer than 2 usable points.
std::optional<PowerLawFit> fit_power_law(const std::vector<std::pair<double, double>>& points);

// The rule above; nullopt for fewer than 3 usable points.
std::optional<PowerLawFit> fit_upper_range(std::vector<std::pair<double, double>> points);
constexpr int kMinimumFitPoints = 3;

struct Crossover {
  std::string better_label;  // better above the crossing (`faster_label` in the crossovers table)
  std::string worse_label;   // better below it
  double seq_len = 0;        // N*
};

// All crossings of two measured curves (each sorted by N, y > 0).  `higher_is_better` says
// which side of the crossing is "better" (throughput: higher; latency, memory: lower).
std::vector<Crossover> find_crossovers(const std::string& label_a, const std::vector<std::pair<double, double>>& a,
                                       const std::string& label_b, const std::vector<std::pair<double, double>>& b,
                                       bool higher_is_better);

// log-log interpolation of a sorted curve at N inside its range (nullopt outside).
std::optional<double> interpolate_log_log(const std::vector<std::pair<double, double>>& curve, double n);

}  // namespace mixlab::reports
