// Power-law fits (Eigen least squares on log-log) and crossover interpolation.

#include "reports/scaling_fit.h"

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <set>

namespace mixlab::reports {

namespace {

std::vector<std::pair<double, double>> usable(std::vector<std::pair<double, double>> points) {
  points.erase(std::remove_if(points.begin(), points.end(),
                              [](const auto& p) {
                                return !(std::isfinite(p.first) && std::isfinite(p.second) && p.first > 0 && p.second > 0);
                              }),
               points.end());
  std::sort(points.begin(), points.end());
  return points;
}

}  // namespace

std::optional<PowerLawFit> fit_power_law(const std::vector<std::pair<double, double>>& raw) {
  const auto points = usable(raw);
  const int n = static_cast<int>(points.size());
  if (n < 2 || points.front().first == points.back().first) return std::nullopt;
  // Design matrix [1, log N_i], target log y_i.
  Eigen::MatrixXd design(n, 2);
  Eigen::VectorXd target(n);
  for (int i = 0; i < n; ++i) {
    design(i, 0) = 1.0;
    design(i, 1) = std::log(points[i].first);
    target(i) = std::log(points[i].second);
  }
  const Eigen::Vector2d coefficients = design.colPivHouseholderQr().solve(target);
  const Eigen::VectorXd residual = target - design * coefficients;
  const double mean = target.mean();
  const double total = (target.array() - mean).square().sum();
  const double unexplained = residual.squaredNorm();
  PowerLawFit fit;
  fit.log_prefactor = coefficients(0);
  fit.exponent = coefficients(1);
  // A flat curve (total variation at rounding level) is fitted perfectly by a flat line.
  fit.r2 = total > 1e-20 * std::max(1.0, target.squaredNorm()) ? 1.0 - unexplained / total : 1.0;
  fit.n_min = points.front().first;
  fit.n_max = points.back().first;
  fit.count = n;
  return fit;
}

std::optional<PowerLawFit> fit_upper_range(std::vector<std::pair<double, double>> raw) {
  auto points = usable(std::move(raw));
  const int n = static_cast<int>(points.size());
  if (n < kMinimumFitPoints) return std::nullopt;
  const int keep = std::max(kMinimumFitPoints, (n + 1) / 2);
  points.erase(points.begin(), points.end() - keep);
  return fit_power_law(points);
}

std::optional<double> interpolate_log_log(const std::vector<std::pair<double, double>>& curve, double n) {
  if (curve.empty() || n < curve.front().first || n > curve.back().first) return std::nullopt;
  for (size_t i = 0; i + 1 < curve.size(); ++i) {
    const auto& [n1, y1] = curve[i];
    const auto& [n2, y2] = curve[i + 1];
    if (n >= n1 && n <= n2) {
      if (n2 == n1) return y1;
      const double t = (std::log(n) - std::log(n1)) / (std::log(n2) - std::log(n1));
      return std::exp(std::log(y1) + t * (std::log(y2) - std::log(y1)));
    }
  }
  return curve.back().second;  // a single point, n equal to it
}

std::vector<Crossover> find_crossovers(const std::string& label_a, const std::vector<std::pair<double, double>>& raw_a,
                                       const std::string& label_b, const std::vector<std::pair<double, double>>& raw_b,
                                       bool higher_is_better) {
  const auto a = usable(raw_a), b = usable(raw_b);
  std::vector<Crossover> crossings;
  if (a.size() < 2 || b.size() < 2) return crossings;
  const double low = std::max(a.front().first, b.front().first);
  const double high = std::min(a.back().first, b.back().first);
  if (!(low < high)) return crossings;
  std::set<double> grid;
  for (const auto* curve : {&a, &b})
    for (const auto& point : *curve)
      if (point.first >= low && point.first <= high) grid.insert(point.first);
  // Walk the grid, remembering the last N where the curves differed; exact ties are stepped over.
  double last_n = 0, last_d = 0;
  bool have_last = false;
  for (double n : grid) {
    const double d = std::log(*interpolate_log_log(a, n)) - std::log(*interpolate_log_log(b, n));
    if (d == 0) continue;
    if (have_last && (last_d < 0) != (d < 0)) {
      const double log_n = std::log(last_n) + last_d / (last_d - d) * (std::log(n) - std::log(last_n));
      // Above the crossing A is better when d has the sign that favours A.
      const bool a_better_above = higher_is_better ? d > 0 : d < 0;
      crossings.push_back({a_better_above ? label_a : label_b, a_better_above ? label_b : label_a, std::exp(log_n)});
    }
    last_n = n;
    last_d = d;
    have_last = true;
  }
  return crossings;
}

}  // namespace mixlab::reports
