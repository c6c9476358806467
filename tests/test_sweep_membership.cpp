// Sweep membership is its own relation (table sweep_points): a point done under one sweep and
// listed by another is linked, not re-run, and `show --sweep` / `report --where "sweep = ..."`
// see it under both.  Every point of a sweep is `pending` from the start.  Read-only commands
// never write: `show` leaves a database byte for byte as it was.

#include "tests/subprocess.h"
#include "tests/temp_dir.h"
#include "harness/config.h"
#include "harness/show.h"
#include "harness/sweep.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

using mixlab::testing::TempDir;

json spec_named(const std::string& name, const json& widths) {
  json spec = json::parse(R"({
    "base": {"model": {"vocab_size": 32, "d_model": 8, "n_heads": 2, "n_layers": 1,
                       "pattern": [{"mixer": "attention"}, {"mixer": "mlp"}]},
             "measure": {"seq_lens": [8], "phases": ["forward"], "warmup": 0, "repeats": 1, "target_seconds": 0}}})");
  spec["name"] = name;
  spec["grid"] = {{"model.d_model", widths}};
  return spec;
}

std::string text_of(Store& store, const std::string& sql) {
  Statement q(store.handle(), sql);
  return q.step() ? q.text(0) : "";
}

TEST(SweepMembershipTest, APointDoneUnderOneSweepIsLinkedIntoAnother) {
  TempDir dir("membership");
  const SweepSpec a = expand_spec(spec_named("A", {8, 16}), "a.json", "cpu");
  const SweepSpec b = expand_spec(spec_named("B", {16, 24}), "b.json", "cpu");
  ASSERT_EQ(a.points[1].id, b.points[0].id);  // d_model 16 is the same configuration in both
  {
    Store store(dir.file("r.db"));
    EXPECT_EQ(run_sweep(a, store, "cpu", {}).done, 2u);
    const SweepSummary second = run_sweep(b, store, "cpu", {});
    EXPECT_EQ(second.skipped, 1u);
    EXPECT_EQ(second.done, 1u);
    EXPECT_EQ(text_of(store, "SELECT COUNT(*) FROM points"), "3");
    EXPECT_EQ(text_of(store, "SELECT group_concat(point_id) FROM (SELECT point_id FROM sweep_points "
                             "WHERE sweep_name = 'B' ORDER BY position)"),
              b.points[0].id + "," + b.points[1].id);
    std::ostringstream summary;
    print_point_summary(store, summary, ShowFilter{"B", "", ""});
    EXPECT_NE(summary.str().find("B: 2 done"), std::string::npos) << summary.str();
    std::ostringstream table;
    print_measurements(store, table, ShowFilter{"B", "", ""});
    // A blank line, the title, the header and one row per point of B.
    const std::string text = table.str();
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3 + 2) << text;
  }
#ifdef MIXLAB_BINARY
  // The point run under A is in B's report (before, B's filter matched only what B ran).
  const auto report = mixlab::testing::run_process(
      MIXLAB_BINARY, {"report", "table", "--db", dir.file("r.db"), "--metric", "fwd_ms", "--rows", "config",
                      "--format", "csv", "--where", "sweep = 'B' and point_id = '" + a.points[1].id + "'"},
      dir.file("report"));
  ASSERT_TRUE(report.exited_with(0)) << report.err;
  EXPECT_NE(report.out.find("attention"), std::string::npos) << report.out;
#endif
}

TEST(SweepMembershipTest, EveryPointIsPendingWhenTheSweepStarts) {
  TempDir dir("membership_pending");
  const SweepSpec a = expand_spec(spec_named("A", {8, 16, 24}), "a.json", "cpu");
  Store store(dir.file("r.db"));
  std::vector<PointRecord> members;
  for (const auto& p : a.points) members.push_back({p.id, a.name, p.label, p.mixers, p.config.dump()});
  store.register_sweep_points(a.name, members);
  EXPECT_EQ(text_of(store, "SELECT group_concat(status) FROM points"), "pending,pending,pending");
  store.register_sweep_points(a.name, members);  // idempotent
  EXPECT_EQ(text_of(store, "SELECT COUNT(*) FROM sweep_points"), "3");
}

// Labels and errors reach `show` from the database: no terminal escape codes or newlines pass.
TEST(SweepMembershipTest, ShowPrintsNoControlCharacters) {
  TempDir dir("membership_escapes");
  Store store(dir.file("r.db"));
  store.execute("INSERT INTO points (point_id, sweep_name, label, status, error) VALUES "
                "('p', 'S', char(27) || '[2Jevil' || char(10) || 'label', 'failed', 'bad' || char(27) || ']0;title' || char(7))");
  store.execute("INSERT INTO sweep_points (sweep_name, point_id) VALUES ('S', 'p')");
  store.execute("INSERT INTO measurements (point_id, phase, seq_len, batch, status, error) VALUES "
                "('p', 'forward', 8, 1, 'error', 'x' || char(27) || '[31m')");
  std::ostringstream out;
  print_point_summary(store, out, ShowFilter{});
  print_measurements(store, out, ShowFilter{});
  EXPECT_EQ(out.str().find('\x1b'), std::string::npos) << out.str();
  EXPECT_EQ(out.str().find('\x07'), std::string::npos);
  EXPECT_NE(out.str().find("?[2Jevil label"), std::string::npos) << out.str();
}

#ifdef MIXLAB_BINARY
TEST(SweepMembershipTest, ShowNeverWritesTheDatabase) {
  TempDir dir("membership_readonly");
  {
    Store store(dir.file("r.db"));
    store.execute("PRAGMA wal_checkpoint(TRUNCATE)");
  }
  std::filesystem::remove(dir.file("r.db-wal"));
  std::filesystem::remove(dir.file("r.db-shm"));
  const std::string before = mixlab::testing::slurp(dir.file("r.db"));
  const auto show = mixlab::testing::run_process(MIXLAB_BINARY, {"show", "--db", dir.file("r.db")}, dir.file("show"));
  EXPECT_TRUE(show.exited_with(0)) << show.err;
  EXPECT_EQ(mixlab::testing::slurp(dir.file("r.db")), before);
}
#endif

}  // namespace
}  // namespace mixlab
