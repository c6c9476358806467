// bench/peers/ncu_counters_table.py (the Nsight Compute tables of bench/scan_profile.sh,
// bench/attention_profile.sh and bench/scout_profile.sh) on hand-made `ncu --csv --page raw` files:
// a file of three launches (units as ncu prints them: microseconds, megabytes and kilobytes with
// thousands separators, millions of sectors) and a file of one; and scout_profile.sh's calls of ncu,
// through a stand-in.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/source_tree.h"
#include "tests/subprocess.h"
#include "tests/temp_dir.h"

namespace {

constexpr const char* kNcuPython = "/usr/bin/python3";
constexpr const char* kNcuColumns =
    "\"ID\",\"Kernel Name\",\"gpu__time_duration.sum\",\"lts__t_bytes.sum\","
    "\"smsp__average_warps_issue_stalled_wait_per_issue_active.ratio\","
    "\"smsp__average_warps_issue_stalled_barrier_per_issue_active.ratio\",\"lts__t_sectors_op_red.sum\","
    "\"dram__bytes_write.sum\"\n"
    "\"\",\"\",\"usecond\",\"Mbyte\",\"\",\"\",\"Msector\",\"Kbyte\"\n";

mixlab::testing::ProcessResult run_ncu_table(const mixlab::testing::TempDir& dir, const std::vector<std::string>& args) {
  std::vector<std::string> argv{(mixlab::source_tree::root() / "bench" / "peers" / "ncu_counters_table.py").string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return mixlab::testing::run_process(kNcuPython, argv, dir.file("run"));
}

}  // namespace

// Three launches, 1,500 / 20 / 300 µs: --top 2 keeps the 1.5 and 0.3 ms ones, longest first, named
// by file and kernel (namespaces and arguments dropped, template arguments kept); 2,000 Mbyte of
// L2 traffic reads 2 GB; a counter the file lacks prints –; stalls largest first.
TEST(NcuCountersTable, ColumnsPerLaunchInBaseUnits) {
  if (!std::filesystem::exists(kNcuPython)) GTEST_SKIP() << kNcuPython << " is missing";
  mixlab::testing::TempDir dir("ncu_counters_table");
  std::ofstream(dir.file("flex_64_16384.csv"))
      << kNcuColumns
      << "\"0\",\"void mixlab::sm90::(anonymous namespace)::window_backward_kernel<64>(Shape, float *)\","
         "\"1,500\",\"2,000\",\"1.00\",\"2.50\",\"125\",\"1,500,000\"\n"
      << "\"1\",\"triton_poi_fused_0\",\"20\",\"10\",\"0.10\",\"0.20\",\"0\",\"0\"\n"
      << "\"2\",\"triton_tem_fused_0\",\"300\",\"500\",\"3.00\",\"0.50\",\"0\",\"0\"\n";
  std::ofstream(dir.file("scan.csv")) << kNcuColumns
                                     << "\"0\",\"scan_forward_kernel\",\"5,030\",\"40\",\"1.45\",\"0.25\",\"1.5\",\"2,500\"\n";
  const auto result = run_ncu_table(dir, {"--top", "2", dir.file("flex_64_16384.csv"), dir.file("scan.csv")});
  ASSERT_TRUE(result.exited_with(0)) << result.err;
  EXPECT_NE(result.out.find("| counter | flex_64_16384: window_backward_kernel<64> | flex_64_16384: triton_tem_fused_0 | "
                            "scan |"),
            std::string::npos)
      << result.out;
  EXPECT_NE(result.out.find("| time (ms) | 1.5 | 0.3 | 5.03 |"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("| L2 bytes (GB) | 2 | 0.5 | 0.04 |"), std::string::npos) << result.out;
  // 125 million 32-byte sectors of reductions are 4 GB; 1.5 million, 0.048 GB.
  EXPECT_NE(result.out.find("| L2 reductions (GB) | 4 | 0 | 0.048 |"), std::string::npos) << result.out;
  // 1,500,000 kilobytes written to DRAM are 1.5 GB; 2,500, 0.0025.
  EXPECT_NE(result.out.find("| DRAM bytes written (GB) | 1.5 | 0 | 0.0025 |"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("| registers per thread | – | – | – |"), std::string::npos) << result.out;
  EXPECT_EQ(result.out.find("triton_poi_fused_0"), std::string::npos) << "the third-longest launch is left out";
  EXPECT_NE(result.out.find("window_backward_kernel<64>: cycles stalled per issued instruction, largest reasons: "
                            "barrier 2.50, wait 1.00"),
            std::string::npos)
      << result.out;
}

TEST(NcuCountersTable, AFileWithoutALaunchSaysWhereToLook) {
  if (!std::filesystem::exists(kNcuPython)) GTEST_SKIP() << kNcuPython << " is missing";
  mixlab::testing::TempDir dir("ncu_counters_table_empty");
  std::ofstream(dir.file("empty.csv")) << kNcuColumns;
  const auto result = run_ncu_table(dir, {dir.file("empty.csv")});
  EXPECT_FALSE(result.exited_with(0));
  EXPECT_NE(result.err.find("empty.csv: no profiled launch (ncu's log beside it says why)"), std::string::npos)
      << result.err;
}

// bench/scout_profile.sh with a stand-in `ncu` on the PATH (it records its --kernel-name and
// --lengths, and prints one launch whose time is the kernel's position in the script's order, in
// microseconds): one profile per kernel and head dim, eight in all, each of the first launch of
// `kernel_bench --ops=scout` at the asked N, tabled in that order.
TEST(NcuCountersTable, TheScoutProfileTakesEachKernelOnceAtBothHeadDims) {
  if (!std::filesystem::exists(kNcuPython)) GTEST_SKIP() << kNcuPython << " is missing";
  mixlab::testing::TempDir dir("scout_profile");
  std::filesystem::create_directories(dir.file("bin"));
  std::ofstream(dir.file("bin/ncu"))
      << "#!/bin/bash\n"
         "name=; lengths=; count=0\n"
         "for a in \"$@\"; do\n"
         "  [[ $prev == --kernel-name ]] && name=${a#regex:}\n"
         "  [[ $prev == --launch-count ]] && count=$a\n"
         "  [[ $a == --lengths=* ]] && lengths=${a#--lengths=}\n"
         "  prev=$a\n"
         "done\n"
         "echo \"$name $lengths $count\" >> \"$NCU_CALLS\"\n"
         "n=$(wc -l < \"$NCU_CALLS\")\n"
         "printf '\"ID\",\"Kernel Name\",\"gpu__time_duration.sum\"\\n\"\",\"\",\"usecond\"\\n\"0\",\"%s\",\"%s\"\\n' "
         "\"$name\" \"$n\"\n";
  std::filesystem::permissions(dir.file("bin/ncu"), std::filesystem::perms::owner_all);
  const auto script = (mixlab::source_tree::root() / "bench" / "scout_profile.sh").string();
  const auto result = mixlab::testing::run_process(
      "/bin/bash", {"-c", "PATH=\"$1:$PATH\" NCU_CALLS=\"$2\" bash \"$3\" \"$4\" \"$5\" 2048", "profile", dir.file("bin"),
                    dir.file("calls.txt"), script, dir.file("build"), dir.file("out")},
      dir.file("run"));
  ASSERT_TRUE(result.exited_with(0)) << result.out << result.err;
  EXPECT_EQ(mixlab::testing::slurp(dir.file("calls.txt")),
            "checkpoint_forward_kernel<[^>]*64> 2048 1\nbackward_prologue_kernel<[^>]*64> 2048 1\n"
            "checkpoint_keys_backward_kernel<[^>]*64> 2048 1\ncheckpoint_self_backward_kernel<[^>]*64> 2048 1\n"
            "checkpoint_forward_kernel<[^>]*128> 2048 1\nbackward_prologue_kernel<[^>]*128> 2048 1\n"
            "checkpoint_keys_backward_kernel<[^>]*128> 2048 1\ncheckpoint_self_backward_kernel<[^>]*128> 2048 1\n");
  const std::string table = mixlab::testing::slurp(dir.file("out/scout_profile.md"));
  EXPECT_NE(table.find("| counter | checkpoint_forward_kernel_64_2048 | backward_prologue_kernel_64_2048 |"),
            std::string::npos)
      << table;
  // The eight launches took 1 .. 8 µs in the script's order.
  EXPECT_NE(table.find("| time (ms) | 0.001 | 0.002 | 0.003 | 0.004 | 0.005 | 0.006 | 0.007 | 0.008 |"), std::string::npos)
      << table;
}
