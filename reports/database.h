#pragma once
// The results database as reports/ sees it: a thin RAII layer over the SQLite C API (sqlite3.h),
// prepared statements with bound parameters only (nothing a user types is pasted into SQL), and
// the loaders that turn rows into the records the plots, fits and tables use.
//
// reports/ reads the tables of docs/results-schema.md and writes only its own `fits` and
// `crossovers` tables.

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace mixlab::reports {

// Any error while reading the database or writing a report.  Messages name the file and what failed.
class ReportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A value bound to a `?` placeholder.
using BoundValue = std::variant<int64_t, double, std::string>;

class Database {
 public:
  // Opens an existing database; `writable` is needed to store fits and crossovers.
  Database(const std::string& path, bool writable);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  sqlite3* handle() { return handle_; }
  const std::string& path() const { return path_; }
  void execute(const std::string& sql);  // statements without parameters (DDL, BEGIN, COMMIT)
  bool has_table(const std::string& name);

 private:
  sqlite3* handle_ = nullptr;
  std::string path_;
};

class Statement {
 public:
  Statement(Database& database, const std::string& sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  void bind(int index, const BoundValue& value);  // 1-based, as in SQLite
  void bind_all(const std::vector<BoundValue>& values, int first_index = 1);
  bool step();  // true while a row is available; throws on error
  bool is_null(int column);
  int64_t integer(int column);
  double real(int column);  // NaN for NULL
  std::string text(int column);  // "" for NULL

 private:
  Database& database_;
  sqlite3_stmt* statement_ = nullptr;
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
