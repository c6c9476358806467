// Running sweeps: resume (in process, and after a real SIGKILL at several moments), shards (their
// union is the whole; two shard processes writing one file at once lose nothing), merge,
// out-of-memory and NaN points recorded without stopping the sweep, provenance on every row.

#include "tests/subprocess.h"
#include "tests/temp_dir.h"
#include "harness/config.h"
#include "harness/sweep.h"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <sys/wait.h>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

namespace fs = std::filesystem;

using mixlab::testing::TempDir;

// 4 points × 2 lengths × 2 phases = 16 measurement rows.
json tiny_spec() {
  return json::parse(R"({
    "name": "tiny",
    "base": {"model": {"vocab_size": 32, "d_model": 8, "n_heads": 2, "n_layers": 1,
                       "pattern": [{"mixer": "attention"}, {"mixer": "mlp"}]},
             "measure": {"seq_lens": [8, 16], "phases": ["forward", "decode"], "warmup": 1, "repeats": 2,
                         "target_seconds": 0}},
    "grid": {"model.d_model": [8, 16], "model.n_layers": [1, 2]}
  })");
}
constexpr int64_t kPoints = 4, kRowsPerPoint = 4;

int64_t count(Store& store, const std::string& sql) {
  Statement q(store.handle(), sql);
  q.step();
  return q.is_null(0) ? 0 : q.integer(0);
}

std::set<std::string> ids_in(Store& store, const std::string& sql) {
  std::set<std::string> ids;
  Statement q(store.handle(), sql);
  while (q.step()) ids.insert(q.text(0));
  return ids;
}

TEST(SweepTest, RunsEveryPointAndResumeSkipsDoneOnes) {
  TempDir dir("sweep_resume");
  const SweepSpec spec = expand_spec(tiny_spec(), "tiny.json", "cpu");
  Store store(dir.file("r.db"));
  SweepSummary first = run_sweep(spec, store, "cpu", {});
  EXPECT_EQ(first.done, static_cast<size_t>(kPoints));
  EXPECT_EQ(first.failed, 0u);
  EXPECT_EQ(count(store, "SELECT COUNT(*) FROM measurements WHERE status = 'ok'"), kPoints * kRowsPerPoint);
  SweepSummary second = run_sweep(spec, store, "cpu", {});
  EXPECT_EQ(second.skipped, static_cast<size_t>(kPoints));
  EXPECT_EQ(second.done, 0u);
  EXPECT_EQ(count(store, "SELECT COUNT(*) FROM measurements"), kPoints * kRowsPerPoint);
  EXPECT_EQ(count(store, "SELECT COUNT(*) FROM points WHERE sweep_id = " + std::to_string(first.sweep_id)), kPoints);
  SweepOptions force;
  force.force = true;
  EXPECT_EQ(run_sweep(spec, store, "cpu", force).done, static_cast<size_t>(kPoints));
  EXPECT_EQ(count(store, "SELECT COUNT(*) FROM measurements"), kPoints * kRowsPerPoint);
  // The stored config is the resolved point, and its hash is the id.
  Statement q(store.handle(), "SELECT point_id, config_json, label, mixers, parameters FROM points");
  while (q.step()) {
    EXPECT_EQ(point_id(json::parse(q.text(1))), q.text(0));
    EXPECT_EQ(q.text(3), "attention,mlp");
    EXPECT_GT(q.integer(4), 0);
  }
}

TEST(SweepTest, ProvenanceIsStoredWithEveryRow) {
  TempDir dir("sweep_provenance");
  const SweepSpec spec = expand_spec(tiny_spec(), "tiny.json", "cpu");
  Store store(dir.file("r.db"));
  run_sweep(spec, store, "cpu", {});
  EXPECT_EQ(count(store, "SELECT COUNT(*) FROM sweeps WHERE finished_at IS NOT NULL AND git_commit != '' AND host != '' "
                         "AND device = 'cpu' AND dtype = 'float32' AND torch_version LIKE '_%.%' AND spec_json LIKE '%tiny%'"),
            1);
  // Every measurement row repeats the provenance of the sweep that made it.
  EXPECT_EQ(count(store, "SELECT COUNT(*) FROM measurements m JOIN points p USING (point_id) "
                         "JOIN sweeps s ON s.sweep_id = p.sweep_id WHERE m.device = s.device AND m.dtype = s.dtype "
                         "AND m.torch_version = s.torch_version AND m.git_commit = s.git_commit"),
            kPoints * kRowsPerPoint);
}

TEST(SweepTest, OutOfMemoryAndNaNPointsAreRecordedAndTheSweepGoesOn) {
  TempDir dir("sweep_faults");
  json raw = tiny_spec();
  raw.erase("grid");
  raw["points"] = json::parse(R"([
    {"model": {"vocab_size": 8388608, "d_model": 2, "n_heads": 1, "pattern": [{"mixer": "mlp", "hidden": 1}]},
     "measure": {"seq_lens": [1, 4194304], "phases": ["forward"]}},
    {"model": {"init_std": 0.0, "norm_eps": 0.0}},
    {}
  ])");
  const SweepSpec spec = expand_spec(raw, "faults.json", "cpu");
  Store store(dir.file("r.db"));
  const SweepSummary summary = run_sweep(spec, store, "cpu", {});
  EXPECT_EQ(summary.done, 3u);
  EXPECT_EQ(summary.failed, 0u);
  EXPECT_EQ(count(store, "SELECT COUNT(*) FROM measurements WHERE status = 'oom' AND seq_len = 4194304"), 1);
  EXPECT_EQ(count(store, "SELECT COUNT(*) FROM measurements WHERE status = 'ok' AND seq_len = 1"), 1);
  EXPECT_EQ(count(store, "SELECT COUNT(*) FROM measurements WHERE status = 'nonfinite'"), kRowsPerPoint);
  EXPECT_EQ(count(store, "SELECT COUNT(*) FROM measurements m JOIN points p USING (point_id) "
                         "WHERE m.status = 'ok' AND p.config_json NOT LIKE '%8388608%'"),
            kRowsPerPoint);
}

// The sweep calls the training phase directly: a bad train section fails at expansion, before
// anything runs; a good one trains after the measurements, rows through the store.
TEST(SweepTest, TrainingPhaseRunsAfterMeasuringAndWritesThroughTheStore) {
  TempDir dir("sweep_train");
  json raw = tiny_spec();
  raw["base"]["train"] = {{"steps", 3}, {"seq_len", 16}, {"batch_size", 2}, {"eval", {{"examples", 4}}},
                          {"data", {{"source", "mqar"}, {"num_kv_pairs", 2}}}, {"threads", 1}, {"progress", false}};
  json bad = raw;
  bad["base"]["train"]["step"] = 3;
  EXPECT_THROW(expand_spec(bad, "t.json", "cpu"), ConfigError);
  const SweepSpec spec = expand_spec(raw, "t.json", "cpu");
  Store store(dir.file("r.db"));
  SweepOptions options;
  options.run_root = dir.file("runs");
  const SweepSummary summary = run_sweep(spec, store, "cpu", options);
  EXPECT_EQ(summary.done, static_cast<size_t>(kPoints));
  EXPECT_EQ(count(store, "SELECT COUNT(*) FROM train_log"), 3 * kPoints);
  EXPECT_EQ(count(store, "SELECT COUNT(*) FROM evaluations WHERE task = 'mqar' AND metric = 'accuracy'"), kPoints);
  EXPECT_EQ(count(store, "SELECT COUNT(*) FROM measurements"), kPoints * kRowsPerPoint);
  EXPECT_EQ(count(store, "SELECT COUNT(*) FROM points WHERE status = 'done'"), kPoints);
  EXPECT_TRUE(fs::exists(dir.file("runs") + "/" + spec.points[0].id + "/checkpoint.safetensors"));
}

#ifdef MIXLAB_BINARY
int run_cli(const std::string& arguments, const std::string& environment = "") {
  const std::string command = environment + " " + MIXLAB_BINARY + " " + arguments + " >/dev/null 2>&1";
  return std::system(command.c_str());
}

TEST(SweepTest, ResumeAfterAKillAtSeveralMoments) {
  TempDir dir("sweep_kill");
  std::ofstream(dir.file("tiny.json")) << tiny_spec().dump(2);
  struct Kill {
    std::string moment;
    int64_t finished;  // points done before the kill
    int64_t in_flight;  // measurements the point in flight stored before the kill
  };
  const std::vector<Kill> kills = {{"point_started:1", 0, 0}, {"point_started:3", 2, 0},  {"length_stored:7", 1, 3},
                                   {"measured:2", 1, kRowsPerPoint}, {"before_commit:2", 1, kRowsPerPoint},
                                   {"point_done:3", 3, 0}};
  for (const auto& [moment, finished, in_flight] : kills) {
    const std::string db = dir.file(moment.substr(0, moment.find(':')) + moment.substr(moment.find(':') + 1) + ".db");
    const std::string args = "sweep " + dir.file("tiny.json") + " --device cpu --db " + db;
    const int status = run_cli(args, "MIXLAB_FAULT_INJECTION=" + moment);
    ASSERT_TRUE(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGKILL)) << moment;
    std::set<std::string> done_before;
    std::string finished_at_before, kept_before;
    {
      Store store(db);
      done_before = ids_in(store, "SELECT point_id FROM points WHERE status = 'done'");
      EXPECT_EQ(static_cast<int64_t>(done_before.size()), finished) << moment;
      // The point in flight kept the lengths it finished, and nothing else did.
      EXPECT_EQ(count(store, "SELECT COUNT(*) FROM measurements"), finished * kRowsPerPoint + in_flight) << moment;
      EXPECT_EQ(count(store, "SELECT COUNT(*) FROM measurements m JOIN points p USING (point_id) WHERE p.status != 'done'"),
                in_flight) << moment;
      EXPECT_EQ(count(store, "SELECT COUNT(*) FROM sweeps WHERE finished_at IS NULL"), 1) << moment;
      Statement q(store.handle(), "SELECT group_concat(finished_at) FROM (SELECT finished_at FROM points WHERE status = 'done' ORDER BY point_id)");
      q.step();
      finished_at_before = q.text(0);
      Statement kept(store.handle(), "SELECT group_concat(created_at || phase || seq_len) FROM (SELECT * FROM measurements ORDER BY point_id, phase, seq_len)");
      kept.step();
      kept_before = kept.is_null(0) ? "" : kept.text(0);
    }
    ASSERT_EQ(run_cli(args), 0) << moment;
    Store store(db);
    EXPECT_EQ(count(store, "SELECT COUNT(*) FROM points WHERE status = 'done'"), kPoints) << moment;
    EXPECT_EQ(count(store, "SELECT COUNT(*) FROM measurements"), kPoints * kRowsPerPoint) << moment;
    EXPECT_EQ(count(store, "SELECT COUNT(*) FROM (SELECT point_id, phase, seq_len FROM measurements GROUP BY 1, 2, 3)"),
              kPoints * kRowsPerPoint);
    // Points finished before the kill were not measured again.
    std::string in_clause;
    for (const auto& id : done_before) in_clause += (in_clause.empty() ? "'" : ",'") + id + "'";
    if (!in_clause.empty()) {
      Statement q(store.handle(), "SELECT group_concat(finished_at) FROM (SELECT finished_at FROM points WHERE point_id IN (" + in_clause +
                                      ") ORDER BY point_id)");
      q.step();
      EXPECT_EQ(q.text(0), finished_at_before) << moment;
    }
    // Nor were the lengths stored before the kill: every row taken before it is still there, as it was.
    Statement after(store.handle(), "SELECT created_at || phase || seq_len FROM measurements");
    std::set<std::string> rows_after;
    while (after.step()) rows_after.insert(after.text(0));
    std::stringstream before(kept_before);
    for (std::string row; std::getline(before, row, ',');)
      EXPECT_TRUE(rows_after.count(row)) << moment << ": " << row << " was measured again";
    Statement integrity(store.handle(), "PRAGMA integrity_check");
    integrity.step();
    EXPECT_EQ(integrity.text(0), "ok");
  }
}

// `mixlab bench`: a one-point spec through the same code, printed as a table.
TEST(SweepTest, BenchCommandMeasuresAdHoc) {
  TempDir dir("sweep_bench");
  std::ofstream(dir.file("model.json")) << tiny_spec()["base"]["model"].dump();
  const std::string out = dir.file("out.txt");
  const std::string command = std::string(MIXLAB_BINARY) + " bench --model " + dir.file("model.json") +
                              " --set model.d_model=16 --seq 8,16 --phases forward,decode --device cpu --repeats 2 --db " +
                              dir.file("b.db") + " >" + out + " 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0);
  std::ifstream in(out);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("forward"), std::string::npos) << text;
  EXPECT_NE(text.find("decode"), std::string::npos) << text;
  Store store(dir.file("b.db"));
  EXPECT_EQ(count(store, "SELECT COUNT(*) FROM measurements WHERE status = 'ok'"), 4);
  EXPECT_EQ(count(store, "SELECT COUNT(*) FROM points WHERE config_json LIKE '%\"d_model\":16%'"), 1);
  EXPECT_NE(run_cli("bench --model " + dir.file("model.json") + " --seq 8,x --device cpu"), 0);
  // A length with trailing characters is refused by name, not read as its numeric prefix (4k as 4).
  const std::string bad = std::string(MIXLAB_BINARY) + " bench --model " + dir.file("model.json") +
                          " --seq 8,4k --device cpu --db " + dir.file("bad.db") + " >" + out + " 2>&1";
  EXPECT_NE(std::system(bad.c_str()), 0);
  const std::string message = mixlab::testing::slurp(out);
  EXPECT_NE(message.find("'4k' is not a sequence length"), std::string::npos) << message;
}

TEST(SweepTest, ShardsUnionIsTheWholeAndConcurrentShardsShareOneFile) {
  TempDir dir("sweep_shards");
  std::ofstream(dir.file("tiny.json")) << tiny_spec().dump(2);
  const std::string spec = dir.file("tiny.json");
  const SweepSpec whole = expand_spec(tiny_spec(), spec, "cpu");
  std::set<std::string> whole_ids;
  for (const auto& p : whole.points) whole_ids.insert(p.id);

  // Two shard processes writing one database at the same time.
  const std::string shared = dir.file("shared.db");
  const std::string both = "(" + std::string(MIXLAB_BINARY) + " sweep " + spec + " --device cpu --shard 0/2 --db " + shared +
                           " & " + MIXLAB_BINARY + " sweep " + spec + " --device cpu --shard 1/2 --db " + shared +
                           " & wait) >/dev/null 2>&1";
  ASSERT_EQ(std::system(both.c_str()), 0);
  {
    Store store(shared);
    EXPECT_EQ(ids_in(store, "SELECT point_id FROM points WHERE status = 'done'"), whole_ids);
    EXPECT_EQ(count(store, "SELECT COUNT(*) FROM measurements"), kPoints * kRowsPerPoint);
    EXPECT_EQ(count(store, "SELECT COUNT(*) FROM sweeps WHERE shard IN ('0/2', '1/2') AND finished_at IS NOT NULL"), 2);
  }
  // Three shards into three files (the third from Slurm's variables), merged.
  ASSERT_EQ(run_cli("sweep " + spec + " --device cpu --shard 0/3 --db " + dir.file("s0.db")), 0);
  ASSERT_EQ(run_cli("sweep " + spec + " --device cpu --shard 1/3 --db " + dir.file("s1.db")), 0);
  ASSERT_EQ(run_cli("sweep " + spec + " --device cpu --db " + dir.file("s2.db"),
                    "SLURM_ARRAY_TASK_ID=3 SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_COUNT=3"),
            0);
  std::set<std::string> seen;
  for (const char* name : {"s0.db", "s1.db", "s2.db"}) {
    Store store(dir.file(name));
    for (const auto& id : ids_in(store, "SELECT point_id FROM points")) EXPECT_TRUE(seen.insert(id).second) << "in two shards";
  }
  EXPECT_EQ(seen, whole_ids);
  const std::string merge = "merge " + dir.file("s0.db") + " " + dir.file("s1.db") + " " + dir.file("s2.db") + " -o " +
                            dir.file("all.db");
  ASSERT_EQ(run_cli(merge), 0);
  ASSERT_EQ(run_cli(merge), 0);  // idempotent
  Store all(dir.file("all.db"));
  EXPECT_EQ(ids_in(all, "SELECT point_id FROM points WHERE status = 'done'"), whole_ids);
  EXPECT_EQ(count(all, "SELECT COUNT(*) FROM measurements"), kPoints * kRowsPerPoint);
  EXPECT_EQ(count(all, "SELECT COUNT(*) FROM sweeps"), 3);
  // The merged database answers the same as the one-file run.
  EXPECT_EQ(count(all, "SELECT COUNT(*) FROM measurements m JOIN points p USING (point_id) WHERE m.status = 'ok'"),
            kPoints * kRowsPerPoint);
  EXPECT_EQ(run_cli("show --db " + dir.file("all.db")), 0);
}
#endif

}  // namespace
}  // namespace mixlab
