// Power-law fits (Eigen least squares on log-log) and crossover interpolation.

#include "reports/scaling_fit.h"

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
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

namespace {
// Least-squares slope of log y on log N; NaN when all N are equal.
double log_log_slope(const std::vector<std::pair<double, double>>& points) {
  double mean_x = 0, mean_y = 0;
  for (const auto& [n, y] : points) mean_x += std::log(n), mean_y += std::log(y);
  mean_x /= static_cast<double>(points.size());
  mean_y /= static_cast<double>(points.size());
  double sxy = 0, sxx = 0;
  for (const auto& [n, y] : points) {
    const double dx = std::log(n) - mean_x;
    sxx += dx * dx;
    sxy += dx * (std::log(y) - mean_y);
  }
  return sxx > 0 ? sxy / sxx : std::numeric_limits<double>::quiet_NaN();
}

double percentile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  const double position = q * static_cast<double>(values.size() - 1);
  const size_t below = static_cast<size_t>(std::floor(position));
  const size_t above = std::min(values.size() - 1, below + 1);
  return values[below] + (position - static_cast<double>(below)) * (values[above] - values[below]);
}
}  // namespace

std::optional<PowerLawFit> fit_with_interval(const std::vector<std::pair<double, double>>& points,
                                             const std::vector<std::vector<double>>& repeats, int resamples) {
  auto fit = fit_upper_range(points);
  if (!fit) return fit;
  // The lengths the fit kept, each with the values a replicate may draw there.
  std::vector<std::pair<double, std::vector<double>>> kept;
  for (size_t i = 0; i < points.size(); ++i) {
    const auto [n, y] = points[i];
    if (!(n >= fit->n_min && n <= fit->n_max && y > 0 && std::isfinite(y))) continue;
    std::vector<double> values;
    if (i < repeats.size())
      for (double r : repeats[i])
        if (r > 0 && std::isfinite(r)) values.push_back(r);
    if (values.empty()) values.push_back(y);
    kept.emplace_back(n, std::move(values));
  }
  std::mt19937_64 random(0x5eedULL);
  std::vector<double> slopes;
  std::vector<std::pair<double, double>> replicate(kept.size());
  for (int b = 0, attempts = 0; b < resamples && attempts < 20 * resamples; ++attempts) {
    for (auto& point : replicate) {
      const auto& [n, values] = kept[random() % kept.size()];
      point = {n, values[random() % values.size()]};
    }
    const double slope = log_log_slope(replicate);
    if (!std::isfinite(slope)) continue;  // one distinct length: redraw
    slopes.push_back(slope);
    ++b;
  }
  if (slopes.size() >= 2) {
    fit->ci_low = percentile(slopes, 0.025);
    fit->ci_high = percentile(slopes, 0.975);
  }
  return fit;
}

bool exponent_supported(const PowerLawFit& fit) {
  return std::isfinite(fit.ci_low) && std::isfinite(fit.ci_high) && fit.ci_high - fit.ci_low <= kMaxExponentInterval;
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
                                       bool higher_is_better, double min_ratio, const std::vector<double>& noise_a,
                                       const std::vector<double>& noise_b) {
  const auto a = usable(raw_a), b = usable(raw_b);
  // Relative noise at a length: the measured point's, or the larger of the two around it.
  auto noise_at = [](const std::vector<std::pair<double, double>>& raw, const std::vector<double>& noise, double n) {
    if (noise.empty()) return 0.0;
    double below = 0, above = 0, below_n = -INFINITY, above_n = INFINITY;
    for (size_t i = 0; i < raw.size() && i < noise.size(); ++i) {
      const double cv = std::isfinite(noise[i]) ? noise[i] : 0.0;
      if (raw[i].first == n) return cv;
      if (raw[i].first < n && raw[i].first > below_n) below_n = raw[i].first, below = cv;
      if (raw[i].first > n && raw[i].first < above_n) above_n = raw[i].first, above = cv;
    }
    return std::max(below, above);
  };
  std::vector<Crossover> crossings;
  if (a.size() < 2 || b.size() < 2) return crossings;
  const double low = std::max(a.front().first, b.front().first);
  const double high = std::min(a.back().first, b.back().first);
  if (!(low < high)) return crossings;
  std::set<double> grid_set;
  for (const auto* curve : {&a, &b})
    for (const auto& point : *curve)
      if (point.first >= low && point.first <= high) grid_set.insert(point.first);
  const std::vector<double> grid(grid_set.begin(), grid_set.end());
  std::vector<double> d;  // log y_A − log y_B on the grid
  for (double n : grid) d.push_back(std::log(*interpolate_log_log(a, n)) - std::log(*interpolate_log_log(b, n)));
  std::vector<double> tie;  // |d| below this is a tie at that length
  for (double n : grid) {
    const double cv_a = noise_at(raw_a, noise_a, n), cv_b = noise_at(raw_b, noise_b, n);
    tie.push_back(std::max(std::log(min_ratio), 2.0 * std::sqrt(cv_a * cv_a + cv_b * cv_b)));
  }
  // Between two consecutive grid points where the curves differ clearly (|d| ≥ tie) with
  // opposite signs, the curves cross once: at the middle one of the sign changes there (one,
  // unless noise flips the sign inside a near-tie).
  int last_clear = -1;
  for (int i = 0; i < static_cast<int>(grid.size()); ++i) {
    if (std::fabs(d[i]) < tie[i] || d[i] == 0) continue;
    if (last_clear >= 0 && (d[last_clear] < 0) != (d[i] < 0)) {
      std::vector<int> changes;  // k: the sign changes between grid[k] and grid[k + 1]
      int previous = last_clear;
      for (int k = last_clear + 1; k <= i; ++k) {
        if (d[k] == 0) continue;
        if ((d[previous] < 0) != (d[k] < 0)) changes.push_back(previous);
        previous = k;
      }
      const int k = changes[changes.size() / 2];
      int next = k + 1;
      while (d[next] == 0) ++next;
      const double log_n = std::log(grid[k]) + d[k] / (d[k] - d[next]) * (std::log(grid[next]) - std::log(grid[k]));
      // Above the crossing A is better when d has the sign that favours A.
      const bool a_better_above = higher_is_better ? d[i] > 0 : d[i] < 0;
      crossings.push_back({a_better_above ? label_a : label_b, a_better_above ? label_b : label_a, std::exp(log_n)});
    }
    last_clear = i;
  }
  return crossings;
}

}  // namespace mixlab::reports
