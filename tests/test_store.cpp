// The results database: schema and WAL mode, transactional point writes (a failed transaction
// leaves nothing), replacement without duplicates, training rows, provenance, and merge.

#include "tests/temp_dir.h"
#include "harness/store.h"

#include <gtest/gtest.h>

#include <sqlite3.h>

#include <filesystem>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

namespace fs = std::filesystem;

using mixlab::testing::TempDir;

int64_t count(Store& store, const std::string& sql) {
  Statement q(store.handle(), sql);
  q.step();
  return q.integer(0);
}

SweepRecord provenance() {
  SweepRecord r;
  r.name = "s";
  r.git_commit = "abc123";
  r.host = "h";
  r.device = "cpu";
  r.device_name = "test cpu";
  r.torch_version = "9.9.9";
  r.dtype = "float32";
  return r;
}

std::vector<Measurement> rows(int64_t n_lengths) {
  std::vector<Measurement> out;
  for (int64_t i = 0; i < n_lengths; ++i)
    for (const char* phase : {"forward", "decode"}) {
      Measurement m;
      m.phase = phase;
      m.seq_len = 16 << i;
      m.timing = TimingSummary{1.0, 1.1, 0.1, 0.9, 1.3, 5};
      m.tokens_per_s = 1e4;
      m.flops = 1e6;
      m.peak_memory_bytes = std::nan("");  // unknown: stored as NULL
      out.push_back(m);
    }
  return out;
}

TEST(StoreTest, CreatesVersionedSchemaInWalMode) {
  TempDir dir("store_schema");
  Store store(dir.file("r.db"));
  Statement mode(store.handle(), "PRAGMA journal_mode");
  mode.step();
  EXPECT_EQ(mode.text(0), "wal");
  Statement version(store.handle(), "SELECT value FROM meta WHERE key = 'schema_version'");
  ASSERT_TRUE(version.step());
  EXPECT_EQ(version.text(0), "1");
  for (const char* table : {"sweeps", "points", "measurements", "train_log", "evaluations"})
    EXPECT_EQ(count(store, std::string("SELECT COUNT(*) FROM sqlite_master WHERE name = '") + table + "'"), 1) << table;
  // Re-opening an existing file keeps it; another schema version is refused.
  Store again(dir.file("r.db"));
  again.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'");
  EXPECT_THROW(Store(dir.file("r.db")), StoreError);
}

TEST(StoreTest, PointRowsAreOneTransactionWithProvenance) {
  TempDir dir("store_tx");
  Store store(dir.file("r.db"));
  const int64_t sweep = store.begin_sweep(provenance());
  PointRecord p{"p1", "s", "label", "attention,mlp", "{}", 100, 10};
  store.start_point(p, sweep);
  EXPECT_EQ(store.point_status("p1"), std::string("running"));
  // A failure before COMMIT leaves no row of the point behind.
  EXPECT_THROW(store.record_measurements(p, sweep, provenance(), rows(3), true, [] { throw std::runtime_error("killed"); }),
               std::runtime_error);
  EXPECT_EQ(store.measurement_count("p1"), 0);
  EXPECT_EQ(store.point_status("p1"), std::string("running"));
  store.record_measurements(p, sweep, provenance(), rows(3), true);
  EXPECT_EQ(store.point_status("p1"), std::string("done"));
  EXPECT_EQ(store.measurement_count("p1"), 6);
  // Recording again replaces: no duplicates.
  store.record_measurements(p, sweep, provenance(), rows(2), true);
  EXPECT_EQ(store.measurement_count("p1"), 4);
  EXPECT_EQ(count(store, "SELECT COUNT(*) FROM measurements WHERE device = 'cpu' AND dtype = 'float32' AND "
                         "torch_version = '9.9.9' AND git_commit = 'abc123' AND created_at IS NOT NULL"),
            4);
  EXPECT_EQ(count(store, "SELECT COUNT(*) FROM measurements WHERE peak_memory_bytes IS NULL"), 4);
  EXPECT_EQ(count(store, "SELECT parameters FROM points WHERE point_id = 'p1'"), 100);
  store.fail_point("p1", "boom");
  EXPECT_EQ(store.point_status("p1"), std::string("failed"));
  EXPECT_FALSE(store.point_status("nope"));
  store.finish_sweep(sweep);
  EXPECT_EQ(count(store, "SELECT COUNT(*) FROM sweeps WHERE finished_at IS NOT NULL"), 1);
}

TEST(StoreTest, TrainingRecordsAndDiscardAfter) {
  TempDir dir("store_train");
  Store store(dir.file("r.db"));
  auto records = store.training_records("p");
  for (int64_t step = 1; step <= 5; ++step) {
    records->log_step(step, step * 100, step * 1e6, 3.0 / step, 1e-3, 1e4, step * 0.1);
    records->log_evaluation(step, "mqar", "accuracy", 0.1 * step, 64, std::nullopt, "{\"num_kv_pairs\": 8}");
  }
  records->log_evaluation(5, "text", "loss_bucket", 2.0, std::nullopt, 128, "");
  records->log_step(5, 500, 5e6, 0.5, 1e-3, 1e4, 0.5);  // a repeated step replaces
  records->flush();
  EXPECT_EQ(count(store, "SELECT COUNT(*) FROM train_log"), 5);
  EXPECT_EQ(count(store, "SELECT COUNT(*) FROM evaluations WHERE bucket = -1 AND seq_len = 64"), 5);
  records->discard_after(3);
  EXPECT_EQ(count(store, "SELECT MAX(step) FROM train_log"), 3);
  EXPECT_EQ(count(store, "SELECT COUNT(*) FROM evaluations"), 3);
}

// mfu = (flops / step) / (step seconds) / peak, the step's seconds being (tokens / step) /
// tokens_per_s; NULL until the peak is known.
TEST(StoreTest, TrainLogRowsCarryMfuOnceThePeakIsKnown) {
  TempDir dir("store_mfu");
  Store store(dir.file("r.db"));
  auto records = store.training_records("p");
  records->log_step(1, 1000, 6e9, 3.0, 1e-3, 500, 2.0);
  records->set_peak_flops(1e10);
  records->log_step(2, 2000, 1.2e10, 2.5, 1e-3, 500, 4.0);  // 6e9 FLOPs per 2 s step: 3e9 FLOP/s
  records->flush();
  Statement q(store.handle(), "SELECT step, mfu, peak_flops FROM train_log ORDER BY step");
  ASSERT_TRUE(q.step());
  EXPECT_TRUE(q.is_null(1));
  ASSERT_TRUE(q.step());
  EXPECT_NEAR(q.real(1), 0.3, 1e-12);
  EXPECT_EQ(q.real(2), 1e10);
}

// Curve rows are written behind (one transaction for many steps, harness/store_training_records.cpp):
// not in the database right after log_step, all of them, in order and with the implementation in
// force at their step, after flush(); an evaluation writes the curve before it; and rows still
// kept back are written when the records object goes away.
TEST(StoreTest, StepRowsAreWrittenBehindAndNoneIsLost) {
  TempDir dir("store_behind");
  Store store(dir.file("r.db"));
  {
    auto records = store.training_records("p");
    records->set_implementation("a=kernel");
    for (int64_t step = 1; step <= 3; ++step) records->log_step(step, step * 10, 1.0, 1.0 / step, 1e-3, 100, 0.1);
    EXPECT_EQ(count(store, "SELECT COUNT(*) FROM train_log"), 0);  // kept back
    records->set_implementation("a=reference");
    records->log_step(4, 40, 1.0, 0.25, 1e-3, 100, 0.4);
    records->flush();
    EXPECT_EQ(count(store, "SELECT COUNT(*) FROM train_log"), 4);
    EXPECT_EQ(count(store, "SELECT COUNT(*) FROM train_log WHERE implementation = 'a=kernel' AND step <= 3"), 3);
    EXPECT_EQ(count(store, "SELECT COUNT(*) FROM train_log WHERE implementation = 'a=reference' AND step = 4"), 1);
    records->log_step(5, 50, 1.0, 0.2, 1e-3, 100, 0.5);
    records->log_evaluation(5, "mqar", "accuracy", 0.5, 64, std::nullopt, "{}");
    EXPECT_EQ(count(store, "SELECT MAX(step) FROM train_log"), 5);  // the curve before its evaluation
    records->log_step(6, 60, 1.0, 0.1, 1e-3, 100, 0.6);
    records->discard_after(5);  // a kept-back row after the step is discarded too
    EXPECT_EQ(count(store, "SELECT MAX(step) FROM train_log"), 5);
    records->log_step(6, 60, 1.0, 0.1, 1e-3, 100, 0.6);
    records->log_step(7, 70, 1.0, 0.1, 1e-3, 100, 0.7);
  }
  EXPECT_EQ(count(store, "SELECT COUNT(*) FROM train_log"), 7);  // written by the destructor
  EXPECT_EQ(count(store, "SELECT SUM(tokens) FROM train_log"), 280);
}

TEST(StoreTest, MergeTakesBetterPointsAndIsIdempotent) {
  TempDir dir("store_merge");
  {
    Store a(dir.file("a.db"));
    const int64_t sweep = a.begin_sweep(provenance());
    for (const char* id : {"p1", "p2"}) {
      PointRecord p{id, "s", id, "mlp", "{}", 1, 1};
      a.start_point(p, sweep);
      a.record_measurements(p, sweep, provenance(), rows(2), true);
    }
    a.training_records("p1")->log_step(1, 10, 1, 1, 1, 1, 1);
    Store b(dir.file("b.db"));
    SweepRecord other = provenance();
    other.shard = "1/2";
    const int64_t sweep_b = b.begin_sweep(other);
    PointRecord p3{"p3", "s", "p3", "mlp", "{}", 1, 1};
    b.start_point(p3, sweep_b);
    b.record_measurements(p3, sweep_b, other, rows(3), true);
    PointRecord p2{"p2", "s", "p2", "mlp", "{}", 1, 1};  // unfinished here, done in a.db
    b.start_point(p2, sweep_b);
  }
  Store all(dir.file("all.db"));
  EXPECT_EQ(all.merge_from(dir.file("a.db")), 2);
  EXPECT_EQ(all.merge_from(dir.file("b.db")), 1);  // p3 only: p2 is done already
  auto snapshot = [&] {
    return std::vector<int64_t>{count(all, "SELECT COUNT(*) FROM sweeps"), count(all, "SELECT COUNT(*) FROM points"),
                                count(all, "SELECT COUNT(*) FROM measurements"), count(all, "SELECT COUNT(*) FROM train_log"),
                                count(all, "SELECT COUNT(*) FROM points WHERE status = 'done'")};
  };
  const auto once = snapshot();
  EXPECT_EQ(once, (std::vector<int64_t>{2, 3, 4 + 4 + 6, 1, 3}));
  EXPECT_EQ(all.merge_from(dir.file("a.db")), 0);
  EXPECT_EQ(all.merge_from(dir.file("b.db")), 0);
  EXPECT_EQ(snapshot(), once);
  // Points keep pointing at their (renumbered) sweep.
  EXPECT_EQ(count(all, "SELECT COUNT(*) FROM points p JOIN sweeps s USING (sweep_id) WHERE p.point_id = 'p3' AND s.shard = '1/2'"), 1);
  EXPECT_THROW(all.merge_from(dir.file("missing.db")), StoreError);
}

// evaluations.state_bytes was added after version 1: a database without it gains it when opened
// (NULL in its old rows), opening it again changes nothing, and new rows take the value from
// extra_json.state_bytes.
TEST(StoreTest, StateBytesColumnIsAddedWhenMissing) {
  TempDir dir("store_state_bytes");
  const std::string path = dir.file("old.db");
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const char* old_schema =
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
        "INSERT INTO meta VALUES ('schema_version', '1');"
        "CREATE TABLE points (point_id TEXT PRIMARY KEY, sweep_name TEXT, label TEXT, mixers TEXT, config_json TEXT,"
        " status TEXT, error TEXT, parameters INTEGER, embedding_parameters INTEGER, sweep_id INTEGER,"
        " started_at TEXT, finished_at TEXT);"
        "CREATE TABLE evaluations (point_id TEXT, step INTEGER, task TEXT, metric TEXT, value REAL, seq_len INTEGER,"
        " bucket INTEGER, extra_json TEXT, PRIMARY KEY (point_id, step, task, metric, seq_len, bucket));"
        "INSERT INTO evaluations VALUES ('old', 1, 'mqar', 'accuracy', 0.5, 64, -1, '{}');";
    ASSERT_EQ(sqlite3_exec(db, old_schema, nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  for (int opening = 0; opening < 2; ++opening) {
    Store store(path);
    EXPECT_EQ(count(store, "SELECT COUNT(*) FROM pragma_table_info('evaluations') WHERE name = 'state_bytes'"), 1);
    EXPECT_EQ(count(store, "SELECT COUNT(*) FROM evaluations WHERE point_id = 'old' AND state_bytes IS NULL"), 1);
  }
  Store store(path);
  auto records = store.training_records("new");
  records->log_evaluation(1, "mqar", "accuracy", 0.9, 64, std::nullopt, R"({"num_kv_pairs": 4, "state_bytes": 32768})");
  records->log_evaluation(1, "text", "loss", 2.0, 64, std::nullopt, "{}");
  EXPECT_EQ(count(store, "SELECT state_bytes FROM evaluations WHERE point_id = 'new' AND task = 'mqar'"), 32768);
  EXPECT_EQ(count(store, "SELECT COUNT(*) FROM evaluations WHERE point_id = 'new' AND task = 'text' AND state_bytes IS NULL"), 1);
}

}  // namespace
}  // namespace mixlab
