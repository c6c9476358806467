#pragma once
// The fits and crossovers a report computes (reports/report.h) and stores in the database's
// `fits` and `crossovers` tables (reports/queries.h).

#include "reports/metrics.h"
#include "reports/scaling_fit.h"

#include <string>

namespace mixlab::reports {

struct FitRecord {
  std::string label, point_id;
  const Metric* metric = nullptr;
  PowerLawFit fit;
};

struct CrossoverRecord {
  const Metric* metric = nullptr;
  Crossover crossover;
};

}  // namespace mixlab::reports
