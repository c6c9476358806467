#pragma once
// "Best over an axis": a sweep that varies one setting only to choose it (Zoology, arXiv
// 2312.04927, Figure 2: "the maximum performance for each model over four learning rates") is
// read as one configuration per value of everything else.
//
//   group(p) = config(p) with the axis path removed            (canonical JSON: keys sorted)
//   best(g)  = the point p ∈ g with the largest finite value(p)  (ties: the first in input order)
//
// A group whose points have no finite value keeps its size and a NaN value: it is reported as
// having no result, not dropped.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace mixlab::reports {

struct AxisCandidate {
  std::string point_id;
  nlohmann::json config;  // the point's resolved configuration (points.config_json)
  double value;           // e.g. final accuracy; NaN: none
  bool finished = true;   // the point ran to its end (points.status 'done'): its value is final
};

struct AxisBest {
  nlohmann::json config;      // the group's configuration, the axis removed
  std::string point_id;       // the best point ("" when no point has a value)
  nlohmann::json axis_value;  // the best point's value of the axis (null when none)
  double value;               // NaN when no point has a value
  int64_t candidates = 0;     // points in the group
  int64_t finished = 0;       // of them, the points that ran to their end
};

// `axis` is a dotted path into the configuration ("train.lr", "model.mixer_params.swa.window"
// is not one: give the resolved path, e.g. "model.pattern.0.window").  Groups come out in the
// order of their first point.  Throws ReportError when no candidate has the axis.
std::vector<AxisBest> best_over_axis(const std::vector<AxisCandidate>& candidates, const std::string& axis);

// Reads `dotted` ("a.b.0.c") from `config`; null when absent.
nlohmann::json dotted_value(const nlohmann::json& config, const std::string& dotted);

}  // namespace mixlab::reports
