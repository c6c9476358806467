// The kernel benchmark's op table (cli/kernel_ops.h), as bench/peers reads it through
// `mixlab kernel_bench --list-ops`: the kept pairs against a count of the masks themselves,
// the FLOPs and the scan's floor bytes against their definitions.

#include "tests/run_mixlab.h"
#include "tests/temp_dir.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <set>
#include <string>
#include <utility>

using mixlab::testing::run_mixlab;
using mixlab::testing::TempDir;

namespace MIXLAB_UNITY_ID {

// Σ over queries t of the keys s ≤ t that the mask keeps, counted pair by pair.
double counted_pairs(const std::string& op, int64_t n, int64_t window, int64_t segment) {
  double pairs = 0;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t s = 0; s <= t; ++s) {
      if (op == "causal") pairs += 1;
      else if (op == "swa") pairs += (t - s < window);
      else pairs += (s == t) || (s % segment == segment - 1 && s < t);
    }
  return pairs;
}

nlohmann::json list_ops(const TempDir& dir, const std::string& args) {
  const auto outcome = run_mixlab(dir.path.string(), "kernel_bench --list-ops " + args);
  EXPECT_EQ(outcome.status, 0) << outcome.output;
  return nlohmann::json::parse(outcome.output);
}


TEST(KernelOps, AttentionShapesKeepTheMasksPairsAndFillTheGpu) {
  const TempDir dir("kernel_ops");
  const auto table = list_ops(dir, "--ops causal,swa,scout");
  std::set<std::string> ops;
  int checked = 0;
  for (const auto& row : table) {
    const std::string op = row["op"];
    ops.insert(op);
    const int64_t n = row["N"], d = row["head_dim"], bh = row["batch_heads"];
    EXPECT_EQ(n * bh, int64_t{1} << 20) << op << " N=" << n;
    if (n <= 4096) {
      EXPECT_DOUBLE_EQ(row["kept_pairs"].get<double>(), counted_pairs(op, n, row["window"], row["segment"])) << op << " N=" << n;
      ++checked;
    }
    EXPECT_DOUBLE_EQ(row["fwd_flops"].get<double>(), 4.0 * d * row["kept_pairs"].get<double>() * bh);
    EXPECT_DOUBLE_EQ(row["fwdbwd_flops"].get<double>(), 3.5 * row["fwd_flops"].get<double>());
  }
  EXPECT_EQ(ops, (std::set<std::string>{"causal", "swa", "scout"}));
  EXPECT_EQ(checked, 2 * 2 * 3);  // N = 1k, 4k × d = 64, 128 × three ops
  EXPECT_EQ(table.size(), 4u * 2 * 3);
}

TEST(KernelOps, ScanFloorBytesReadEachInputAndWriteEachOutputOnce) {
  const TempDir dir("kernel_ops_scan");
  const auto table = list_ops(dir, "--ops scan,scan_narrow --quick");
  ASSERT_EQ(table.size(), 4u);  // quick: N = 1k, 16k, for each op
  std::set<std::pair<std::string, double>> shapes;
  for (const auto& row : table) {
    shapes.insert({row["op"].get<std::string>(), row["batch"].get<double>() * row["channels"].get<double>()});
    const double n = row["N"], b = row["batch"], e = row["channels"], states = row["states"];
    const double activation = 2 * b * e * n, projection = 2 * b * states * n;  // bf16 [B, E, N], [B, n, N]
    // forward: u, Δ, z read, y written; B, C read.
    EXPECT_DOUBLE_EQ(row["fwd_bytes"].get<double>(), (3 + 1) * activation + 2 * projection);
    // backward: u, Δ, z, dy read, du, dΔ, dz written; B, C read, dB, dC written.
    EXPECT_DOUBLE_EQ(row["fwdbwd_bytes"].get<double>(), row["fwd_bytes"].get<double>() + (4 + 3) * activation + (2 + 2) * projection);
  }
  // batch x channels: 8 x 2048 (fills the GPU), 1 x 1536 (a d_model 768 Mamba at batch 1)
  EXPECT_EQ(shapes, (std::set<std::pair<std::string, double>>{{"scan", 8.0 * 2048}, {"scan_narrow", 1536.0}}));
}

// --lengths keeps the shapes of those N only (one shape per op under a profiler); a length the
// table does not have is a usage error that lists the table's lengths.
TEST(KernelOps, LengthsKeepOnlyTheAskedShapes) {
  const TempDir dir("kernel_ops_lengths");
  const auto table = list_ops(dir, "--ops scan,swa --lengths 16384");
  std::multiset<std::string> ops;
  for (const auto& row : table) {
    EXPECT_EQ(row["N"].get<int64_t>(), 16384) << row.dump();
    ops.insert(row["op"].get<std::string>());
  }
  EXPECT_EQ(ops, (std::multiset<std::string>{"scan", "swa", "swa"}));  // swa at head dim 64 and 128
  const auto outcome = run_mixlab(dir.path.string(), "kernel_bench --list-ops --ops scan --lengths 1000");
  EXPECT_EQ(outcome.status, 2) << outcome.output;
  EXPECT_NE(outcome.output.find("--lengths: no shape"), std::string::npos) << outcome.output;
  EXPECT_NE(outcome.output.find("1024, 4096, 16384, 65536"), std::string::npos) << outcome.output;
}

TEST(KernelOps, AnUnknownOpIsAUsageError) {
  const TempDir dir("kernel_ops_bad");
  const auto outcome = run_mixlab(dir.path.string(), "kernel_bench --list-ops --ops swa,flash");
  EXPECT_EQ(outcome.status, 2);
  EXPECT_NE(outcome.output.find("unknown op 'flash'; valid: causal, swa, scout, scan, scan_narrow"), std::string::npos) << outcome.output;
}

}  // namespace
