// bench/decode_ab_table.py (the table of a same-call decode A/B, bench/decode_ab.sh) on hand-made
// sweep databases whose step times and changes are worked out below, and decode_ab.sh's refusal of
// a variable that is not one of mixlab's switches before anything runs.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include "tests/source_tree.h"
#include "tests/subprocess.h"
#include "tests/temp_dir.h"

namespace MIXLAB_UNITY_ID {

using mixlab::testing::ProcessResult;
using mixlab::testing::TempDir;

constexpr const char* kPython = "/usr/bin/python3";

// A database with the columns the table reads, and one decode row per (label, N, ms per step) at
// batch 16: generate_tokens_per_s = 16 / (ms / 1000).  `extra` rows: a failed decode row and a
// forward row, both to be left out.
void write_database(const std::string& path, const std::vector<std::tuple<std::string, int, double>>& rows) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  std::string sql =
      "CREATE TABLE points (point_id TEXT PRIMARY KEY, label TEXT);"
      "CREATE TABLE measurements (point_id TEXT, phase TEXT, seq_len INTEGER, batch INTEGER, status TEXT, "
      "extra_json TEXT);"
      "INSERT INTO points VALUES ('f', 'qwen2-340m · decode');"
      "INSERT INTO measurements VALUES ('f', 'decode', 4096, 16, 'error', '{}');"
      "INSERT INTO measurements VALUES ('f', 'forward', 2048, 16, 'ok', '{\"generate_tokens_per_s\": 1.0}');";
  int id = 0;
  for (const auto& [label, n, ms] : rows) {
    const std::string point = "p" + std::to_string(id++);
    sql += "INSERT INTO points VALUES ('" + point + "', '" + label + " · decode');";
    sql += "INSERT INTO measurements VALUES ('" + point + "', 'decode', " + std::to_string(n) + ", 16, 'ok', "
           "'{\"generate_tokens_per_s\": " + std::to_string(16.0 / (ms / 1000.0)) + "}');";
  }
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
}

ProcessResult run_decode_table(const TempDir& dir, const std::vector<std::string>& args) {
  std::vector<std::string> argv{(mixlab::source_tree::root() / "bench" / "decode_ab_table.py").string()};
  for (const auto& a : args) argv.push_back(a == "--" ? a : dir.file(a));
  return mixlab::testing::run_process(kPython, argv, dir.file("run"));
}

// A: mamba-546m at 2048 in 1.800 and 1.900 ms (median 1.850), scout-mamba-430m at 2048 only in A;
// B: 1.500 and 1.600 (median 1.550).  Change (1.550 − 1.850) / 1.850 = −16.2%.
TEST(DecodeAbTable, MedianStepPerSideAndTheChange) {
  if (!std::filesystem::exists(kPython)) GTEST_SKIP() << kPython << " is missing";
  TempDir dir("decode_ab_table");
  write_database(dir.file("a1.db"), {{"mamba-546m", 2048, 1.8}, {"scout-mamba-430m", 2048, 1.1}});
  write_database(dir.file("a2.db"), {{"mamba-546m", 2048, 1.9}});
  write_database(dir.file("b1.db"), {{"mamba-546m", 2048, 1.5}});
  write_database(dir.file("b2.db"), {{"mamba-546m", 2048, 1.6}});
  const auto result = run_decode_table(dir, {"a1.db", "a2.db", "--", "b1.db", "b2.db"});
  ASSERT_TRUE(result.exited_with(0)) << result.err;
  EXPECT_NE(result.out.find("A: 2 run(s), B: 2 run(s)"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("| mamba-546m | 2048 | 1.850 | 1.550 | -16.2% | 1.800, 1.900 | 1.500, 1.600 |"),
            std::string::npos)
      << result.out;
  EXPECT_NE(result.out.find("| scout-mamba-430m | 2048 | only in A |"), std::string::npos) << result.out;
  EXPECT_EQ(result.out.find("qwen2-340m"), std::string::npos) << "failed and forward rows are left out: " << result.out;
}

TEST(DecodeAbTable, WithoutBothSidesItSaysHowToCallIt) {
  if (!std::filesystem::exists(kPython)) GTEST_SKIP() << kPython << " is missing";
  TempDir dir("decode_ab_table_usage");
  write_database(dir.file("a1.db"), {{"mamba-546m", 2048, 1.8}});
  const auto result = run_decode_table(dir, {"a1.db"});
  EXPECT_FALSE(result.exited_with(0));
  EXPECT_NE(result.err.find("usage: decode_ab_table.py A1.db"), std::string::npos) << result.err;
}

// A variable that is not a MIXLAB_ switch (a typo of the command line) stops the script with
// status 2 before any run.
TEST(DecodeAb, AVariableThatIsNotASwitchIsRefused) {
  TempDir dir("decode_ab_refusal");
  const auto script = (mixlab::source_tree::root() / "bench" / "decode_ab.sh").string();
  const auto result = mixlab::testing::run_process("/bin/bash", {script, dir.file("build"), dir.file("out"), "PDL"},
                                                   dir.file("run"));
  EXPECT_TRUE(result.exited_with(2)) << result.out << result.err;
  EXPECT_NE(result.err.find("'PDL' is not a MIXLAB_ variable"), std::string::npos) << result.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("out"))) << "nothing ran";
}

}  // namespace MIXLAB_UNITY_ID
