#pragma once
// The results database as reports/ sees it: a connection of the one SQLite layer (sqlite/) that
// checks the file is a mixlab results database, and the records the queries (reports/queries.h)
// turn rows into for the plots, fits and tables.
//
// reports/ reads the tables of docs/results-schema.md and writes only its own `fits` and
// `crossovers` tables.

#include "sqlite/database.h"
#include "sqlite/statement.h"

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace mixlab::reports {

// Any error while reading the database or writing a report.  Messages name the file and what failed.
class ReportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Statements and bound values are those of the one SQLite layer (sqlite/statement.h).
using sqlite::Statement;
using BoundValue = sqlite::Value;

// A results database opened for a report: the tables of docs/results-schema.md must be there.
class Database : public sqlite::Database {
 public:
  // Opens an existing database; `writable` is needed to store fits and crossovers.
  Database(const std::string& path, bool writable);
};

// ------------------------------------------------------------------ records

// One row of `points`, with a display label that is unique within the report (a label shared
// by two different points gets the first 6 characters of the point id appended).
struct PointInfo {
  std::string point_id;
  std::string label;
  std::string mixers;
  std::string sweep_name;
  std::string status;
  int64_t parameters = 0;
  std::string error;  // why the point failed, if it did
};

// One (point, seq_len) value of a metric; `status` is the measurement's (`ok`, `oom`, ...).
struct MetricRow {
  std::string point_id;
  std::string label;
  int64_t seq_len = 0;
  std::string status;
  double value = std::numeric_limits<double>::quiet_NaN();
  // Timing metrics (latency, throughput, TFLOP/s): the repeats' spread in the metric's stored
  // units (standard deviation; NaN when not timed) and every repeat as a value of the metric.
  double spread = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> samples;
  std::string device;  // measurements.device: the memory probe's resolution depends on it
};

struct TrainRow {
  std::string point_id, label;
  int64_t step = 0, tokens = 0;
  double flops = 0, loss = 0, tokens_per_s = 0;
};

struct EvaluationRow {
  std::string point_id, label;
  int64_t step = 0;
  std::string task, metric;
  double value = 0;
  int64_t seq_len = -1;  // -1 when not applicable
  int64_t bucket = -1;   // -1 unless metric == loss_bucket
};

}  // namespace mixlab::reports
