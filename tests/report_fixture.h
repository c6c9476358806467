#pragma once
// A results database for the report tests, created here from docs/results-schema.md (not from
// harness/store, so these tests stand alone).  Values are given exactly, so tests can state what
// the fits, crossovers and tables must be.

#include <sqlite3.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

namespace mixlab::reports::fixture {

// Plots need gnuplot.  The GPU machine has none (reports are drawn from the databases brought
// back), so tests that render plots skip there, saying why; scripts/test.sh installs it, so on
// the CPU machines and in CI they always run.
inline bool gnuplot_installed() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }
#define MIXLAB_REQUIRE_GNUPLOT()                                 \
  if (!::mixlab::reports::fixture::gnuplot_installed())          \
  GTEST_SKIP() << "gnuplot is not installed here (Debian: gnuplot-nox); plots are drawn where it is"

// A folder under the system temp dir, removed with everything in it at the end of the test.
class TempDir {
 public:
  explicit TempDir(const std::string& name) {
    path_ = std::filesystem::temp_directory_path() / ("mixlab_test_" + name + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string path(const std::string& child = "") const { return child.empty() ? path_.string() : (path_ / child).string(); }

 private:
  std::filesystem::path path_;
};

// The whole of a (text or binary) file.
inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

class Fixture {
 public:
  explicit Fixture(const std::string& path) : path_(path) {
    std::filesystem::remove(path);
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) throw std::runtime_error("fixture: cannot create " + path);
    // Test data need no durability: without fsync per insert a fixture is built in milliseconds.
    exec("PRAGMA synchronous = OFF; PRAGMA journal_mode = MEMORY;");
    exec(R"sql(
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
      INSERT INTO meta VALUES ('schema_version', '1');
      CREATE TABLE sweeps (sweep_id INTEGER PRIMARY KEY, name TEXT, description TEXT, spec_path TEXT, spec_json TEXT,
        started_at TEXT, finished_at TEXT, git_commit TEXT, host TEXT, device TEXT, device_name TEXT,
        torch_version TEXT, dtype TEXT, shard TEXT);
      CREATE TABLE points (point_id TEXT PRIMARY KEY, sweep_name TEXT, label TEXT, mixers TEXT, config_json TEXT,
        status TEXT, error TEXT, parameters INTEGER, embedding_parameters INTEGER, sweep_id INTEGER,
        started_at TEXT, finished_at TEXT);
      CREATE TABLE measurements (point_id TEXT, phase TEXT, seq_len INTEGER, batch INTEGER, status TEXT, error TEXT,
        median_ms REAL, mean_ms REAL, stddev_ms REAL, min_ms REAL, max_ms REAL, repeats INTEGER, tokens_per_s REAL,
        flops REAL, tflops_per_s REAL, peak_memory_bytes REAL, state_bytes REAL, measured_state_bytes REAL,
        device TEXT, dtype TEXT, torch_version TEXT, git_commit TEXT, created_at TEXT, extra_json TEXT,
        PRIMARY KEY (point_id, phase, seq_len));
      CREATE TABLE train_log (point_id TEXT, step INTEGER, tokens INTEGER, flops REAL, loss REAL, lr REAL,
        tokens_per_s REAL, elapsed_s REAL, PRIMARY KEY (point_id, step));
      CREATE TABLE evaluations (point_id TEXT, step INTEGER, task TEXT, metric TEXT, value REAL, seq_len INTEGER,
        bucket INTEGER, extra_json TEXT, PRIMARY KEY (point_id, step, task, metric, seq_len, bucket));
      INSERT INTO sweeps (sweep_id, name, device, device_name, dtype, torch_version, git_commit, started_at)
        VALUES (1, 'fixture', 'cpu', 'test CPU', 'float32', '1.13', 'abc123', '2026-01-01T00:00:00Z');
    )sql");
  }
  ~Fixture() { sqlite3_close(db_); }
  const std::string& path() const { return path_; }
  sqlite3* db() { return db_; }

  void exec(const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      std::string message = error ? error : "?";
      sqlite3_free(error);
      throw std::runtime_error("fixture: " + message);
    }
  }

  void add_point(const std::string& id, const std::string& label, const std::string& mixers, int64_t parameters = 0,
                 const std::string& status = "done") {
    Bound(db_, "INSERT INTO points (point_id, sweep_name, label, mixers, status, parameters, sweep_id) "
               "VALUES (?, 'fixture', ?, ?, ?, ?, 1)")
        .text(1, id).text(2, label).text(3, mixers).text(4, status).integer(5, parameters).run();
  }

  // One measurement; tokens/s, TFLOP/s follow from the latency (batch 1) as the schema defines.
  void add_measurement(const std::string& id, const std::string& phase, int64_t seq_len, const std::string& status,
                       double median_ms, double flops = NAN, double peak_bytes = NAN, double state_bytes = NAN) {
    const bool ok = status == "ok";
    Bound(db_, "INSERT INTO measurements (point_id, phase, seq_len, batch, status, median_ms, tokens_per_s, flops, "
               "tflops_per_s, peak_memory_bytes, state_bytes, device, dtype) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, 'cpu', 'float32')")
        .text(1, id).text(2, phase).integer(3, seq_len).text(4, status)
        .real(5, ok ? median_ms : NAN)
        .real(6, ok ? (phase == "decode" ? 1.0 : static_cast<double>(seq_len)) / (median_ms / 1e3) : NAN)
        .real(7, flops)
        .real(8, ok && std::isfinite(flops) ? flops / (median_ms / 1e3) / 1e12 : NAN)
        .real(9, ok ? peak_bytes : NAN)
        .real(10, state_bytes)
        .run();
  }

  // The timed repeats of a measurement: its stddev_ms and extra_json.samples_ms, as measure.cpp stores them.
  void add_repeats(const std::string& id, const std::string& phase, int64_t seq_len, const std::vector<double>& samples_ms) {
    double mean = 0, squares = 0;
    for (double x : samples_ms) mean += x / static_cast<double>(samples_ms.size());
    for (double x : samples_ms) squares += (x - mean) * (x - mean);
    const double stddev = samples_ms.size() > 1 ? std::sqrt(squares / static_cast<double>(samples_ms.size() - 1)) : 0.0;
    std::string list;
    for (double x : samples_ms) list += (list.empty() ? "" : ",") + std::to_string(x);
    Bound(db_, "UPDATE measurements SET stddev_ms = ?, repeats = ?, extra_json = ? WHERE point_id = ? AND phase = ? AND seq_len = ?")
        .real(1, stddev).integer(2, static_cast<int64_t>(samples_ms.size())).text(3, "{\"samples_ms\": [" + list + "]}")
        .text(4, id).text(5, phase).integer(6, seq_len).run();
  }

  void add_train(const std::string& id, int64_t step, int64_t tokens, double flops, double loss, double tokens_per_s) {
    Bound(db_, "INSERT INTO train_log (point_id, step, tokens, flops, loss, lr, tokens_per_s, elapsed_s) "
               "VALUES (?, ?, ?, ?, ?, 1e-3, ?, 0)")
        .text(1, id).integer(2, step).integer(3, tokens).real(4, flops).real(5, loss).real(6, tokens_per_s).run();
  }

  void add_evaluation(const std::string& id, int64_t step, const std::string& task, const std::string& metric, double value,
                      int64_t seq_len = -1, int64_t bucket = -1) {
    Bound(db_, "INSERT INTO evaluations (point_id, step, task, metric, value, seq_len, bucket) VALUES (?, ?, ?, ?, ?, ?, ?)")
        .text(1, id).integer(2, step).text(3, task).text(4, metric).real(5, value).integer(6, seq_len).integer(7, bucket).run();
  }

  int64_t count(const std::string& sql) {
    sqlite3_stmt* statement = nullptr;
    sqlite3_prepare_v2(db_, sql.c_str(), -1, &statement, nullptr);
    int64_t value = -1;
    if (statement && sqlite3_step(statement) == SQLITE_ROW) value = sqlite3_column_int64(statement, 0);
    sqlite3_finalize(statement);
    return value;
  }

 private:
  struct Bound {
    Bound(sqlite3* db, const char* sql) { sqlite3_prepare_v2(db, sql, -1, &statement, nullptr); }
    ~Bound() { sqlite3_finalize(statement); }
    Bound& text(int i, const std::string& v) { sqlite3_bind_text(statement, i, v.c_str(), -1, SQLITE_TRANSIENT); return *this; }
    Bound& integer(int i, int64_t v) { sqlite3_bind_int64(statement, i, v); return *this; }
    Bound& real(int i, double v) {
      if (std::isfinite(v)) sqlite3_bind_double(statement, i, v);
      else sqlite3_bind_null(statement, i);
      return *this;
    }
    void run() {
      if (sqlite3_step(statement) != SQLITE_DONE) throw std::runtime_error("fixture: insert failed");
    }
    sqlite3_stmt* statement = nullptr;
  };
  std::string path_;
  sqlite3* db_ = nullptr;
};

// The scaling study used by the plot and report tests: three configurations with exact power
// laws for the forward+backward latency (forward = 1/3 of it), lengths 256 … 8192:
//   full attention      2e-5 · N²     (OOM at 8192)
//   scout-swa S=64      6e-4 · N^1.5  (crosses full attention at N* = (6e-4/2e-5)² = 900)
//   swa W=128           0.05 · N      (crosses full attention at 2500, scout at (0.05/6e-4)² ≈ 6944)
// plus training logs and evaluations for two of them.
inline double full_ms(double n) { return 2e-5 * n * n; }
inline double scout_ms(double n) { return 6e-4 * std::pow(n, 1.5); }
inline double swa_ms(double n) { return 0.05 * n; }

inline void fill_scaling_study(Fixture& fixture) {
  fixture.add_point("p_full", "full attention", "attention,mlp", 120000);
  fixture.add_point("p_scout", "scout-swa S=64", "swa,mlp,checkpoint_attention", 130000);
  fixture.add_point("p_swa", "swa W=128", "swa,mlp", 120000);
  for (int64_t n = 256; n <= 8192; n *= 2) {
    const double x = static_cast<double>(n);
    const bool full_fits = n < 8192;
    for (const char* phase : {"forward", "forward_backward"}) {
      const double share = std::string(phase) == "forward" ? 1.0 / 3 : 1.0;
      fixture.add_measurement("p_full", phase, n, full_fits ? "ok" : "oom", share * full_ms(x), 1e3 * x * x, 64 * x * x, 128 * x);
      fixture.add_measurement("p_scout", phase, n, "ok", share * scout_ms(x), 3e4 * std::pow(x, 1.5), 2e3 * std::pow(x, 1.5),
                              128 * (64 + x / 64));
      fixture.add_measurement("p_swa", phase, n, "ok", share * swa_ms(x), 2e5 * x, 1e5 * x, 128 * 128);
    }
    fixture.add_measurement("p_full", "decode", n, full_fits ? "ok" : "time_budget", 1e-4 * x + 0.1);
    fixture.add_measurement("p_swa", "decode", n, "ok", 0.2);
  }
  for (int64_t step = 1; step <= 40; ++step) {
    const double s = static_cast<double>(step);
    fixture.add_train("p_full", step, step * 4096, s * 4096 * 6e5, 2.0 + 3.0 * std::exp(-s / 10), 9000);
    fixture.add_train("p_swa", step, step * 4096, s * 4096 * 4e5, 2.2 + 3.0 * std::exp(-s / 12), 15000);
  }
  for (const auto& [id, loss] : {std::make_pair("p_full", 2.05), std::make_pair("p_swa", 2.3)}) {
    fixture.add_evaluation(id, 20, "text", "loss", loss + 0.5);
    fixture.add_evaluation(id, 40, "text", "loss", loss);
    for (int64_t n : {64, 128, 256}) {
      const double accuracy = std::string(id) == "p_full" ? 0.99 : 0.9 * 64.0 / static_cast<double>(n);
      fixture.add_evaluation(id, 40, "mqar", "accuracy", accuracy, n);
    }
    for (int64_t bucket : {0, 32, 64, 96}) fixture.add_evaluation(id, 40, "text", "loss_bucket", loss + 1.0 / (1 + bucket / 16.0), 128, bucket);
  }
}

}  // namespace mixlab::reports::fixture
