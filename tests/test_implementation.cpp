// Which implementation ran (core/implementation.h): the log's summary, what the dispatch points
// record, the measurement rows and the training rows that carry it, and the migration that gives
// an older results database the column.  (On CUDA, test_cuda_kernels.cpp checks that the kernel
// is recorded where it runs.)

#include "tests/temp_dir.h"
#include "attention/swa.h"
#include "harness/measure.h"
#include "harness/model.h"
#include "harness/store.h"
#include "core/implementation.h"
#include "mixers/selective_scan.h"

#include <gtest/gtest.h>

#include <sqlite3.h>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

TEST(Implementation, LogNamesEachOpOnceAndNests) {
  ImplementationLog outer;
  EXPECT_EQ(outer.summary(), "library");
  record_implementation("b_op", Implementation::reference);
  {
    ImplementationLog inner;  // the innermost log collects
    record_implementation("a_op", Implementation::kernel);
    record_implementation("a_op", Implementation::kernel);
    EXPECT_EQ(inner.summary(), "a_op=kernel");
    record_implementation("c_op", Implementation::reference);
    record_implementation("c_op", Implementation::kernel);
    EXPECT_EQ(inner.summary(), "a_op=kernel, c_op=kernel+reference");
  }
  EXPECT_EQ(outer.summary(), "b_op=reference");
}

TEST(Implementation, CpuDispatchRecordsTheReference) {
  ImplementationLog log;
  auto q = torch::randn({1, 2, 9, 8});
  sliding_window_attention(q, q, q, 4);
  auto u = torch::randn({1, 3, 5});
  auto B = torch::randn({1, 4, 5});
  selective_scan(u, u, -torch::ones({3, 4}), B, B, torch::ones({3}), u, torch::zeros({3}));
  EXPECT_EQ(log.summary(), "selective_scan=reference, sliding_window_attention=reference");
}

TEST(Implementation, MeasurementRowsSayWhatRan) {
  ModelConfig config;
  config.d_model = 16;
  config.n_heads = 2;
  config.n_layers = 1;
  config.pattern = {SublayerConfig{"swa", {{"window", ParamValue{int64_t{4}}}}}, SublayerConfig{"mlp", {}}};
  LanguageModel model(config);
  MeasureSettings settings;
  settings.seq_lens = {16};
  settings.phases = {"forward", "forward_backward"};
  settings.repeats = 1;
  settings.min_repeats = 1;
  settings.warmup = 0;
  const auto rows = measure_model(model, settings);
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& row : rows)
    EXPECT_EQ(row.implementation,
              "add_rms_norm=reference, apply_rope=reference, rms_norm=reference, sliding_window_attention=reference, "
              "swiglu=reference, token_embedding=reference")
        << row.phase;

  ModelConfig mlp_only = config;
  mlp_only.pattern = {SublayerConfig{"mlp", {}}};
  LanguageModel swiglu_only(mlp_only);
  settings.phases = {"forward"};
  EXPECT_EQ(measure_model(swiglu_only, settings).at(0).implementation,
            "add_rms_norm=reference, rms_norm=reference, swiglu=reference, token_embedding=reference");

  ModelConfig identity = config;  // the embedding and the norms (the first alone, the next fused with the add)
  identity.pattern = {SublayerConfig{"identity", {}}};
  LanguageModel plain(identity);
  EXPECT_EQ(measure_model(plain, settings).at(0).implementation,
            "add_rms_norm=reference, rms_norm=reference, token_embedding=reference");

  ModelConfig no_kernel_op = identity;  // layer averaging keeps add and norm apart: every norm runs alone
  no_kernel_op.layer_averaging = true;
  LanguageModel averaged(no_kernel_op);
  EXPECT_EQ(measure_model(averaged, settings).at(0).implementation, "rms_norm=reference, token_embedding=reference");
}

TEST(Implementation, AnOlderDatabaseGainsTheColumnsAndRowsCarryThem) {
  mixlab::testing::TempDir dir("implementation");
  const std::string path = dir.file("old.db");
  {  // a version-1 database written before the implementation columns existed
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const char* sql =
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
        "INSERT INTO meta VALUES ('schema_version', '1');"
        "CREATE TABLE measurements (point_id TEXT, phase TEXT, seq_len INTEGER, batch INTEGER, status TEXT, "
        "error TEXT, median_ms REAL, mean_ms REAL, stddev_ms REAL, min_ms REAL, max_ms REAL, repeats INTEGER, "
        "tokens_per_s REAL, flops REAL, tflops_per_s REAL, peak_memory_bytes REAL, state_bytes REAL, "
        "measured_state_bytes REAL, device TEXT, dtype TEXT, torch_version TEXT, git_commit TEXT, "
        "created_at TEXT, extra_json TEXT, PRIMARY KEY (point_id, phase, seq_len));"
        "INSERT INTO measurements (point_id, phase, seq_len) VALUES ('old', 'forward', 8);"
        "CREATE TABLE train_log (point_id TEXT, step INTEGER, tokens INTEGER, flops REAL, loss REAL, lr REAL, "
        "tokens_per_s REAL, elapsed_s REAL, PRIMARY KEY (point_id, step));";
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  Store store(path);
  PointRecord point;
  point.point_id = "p";
  Measurement m;
  m.phase = "forward";
  m.seq_len = 8;
  m.implementation = "selective_scan=kernel";
  store.record_measurements(point, 1, SweepRecord{}, {m}, true);
  auto records = store.training_records("p");
  records->set_implementation("sliding_window_attention=kernel");
  records->log_step(1, 10, 1.0, 2.0, 1e-3, 100.0, 0.1);
  records->flush();

  auto text = [&](const std::string& sql) {
    Statement q(store.handle(), sql);
    return q.step() ? q.text(0) : std::string("(no row)");
  };
  EXPECT_EQ(text("SELECT implementation FROM measurements WHERE point_id = 'p'"), "selective_scan=kernel");
  EXPECT_EQ(text("SELECT COALESCE(implementation, 'NULL') FROM measurements WHERE point_id = 'old'"), "NULL");
  EXPECT_EQ(text("SELECT implementation FROM train_log WHERE point_id = 'p'"), "sliding_window_attention=kernel");
}

}  // namespace
}  // namespace mixlab
