#!/usr/bin/env bash
# Why the selective scan misses issue 14's target (forward + backward <= 3x the bandwidth floor):
# Nsight Compute on the scan's forward and backward kernels at one shape, one launch each (the
# first of `mixlab kernel_bench --ops=OP --lengths=N`), with the counters that say which limit
# binds: time, achieved against theoretical occupancy and what limits the latter (registers,
# shared memory), issue slots busy, the use of each pipe (xu: exp2 and the other special
# functions; fma; alu; lsu: shared and global loads), DRAM throughput, and the cycles a warp
# waits per issued instruction by reason.
#
# Usage: bench/scan_profile.sh BUILD_DIR OUT_DIR [op, default scan] [N, default 16384]
#   OUT_DIR/scan_<kernel>_<op>_<N>.csv: ncu's raw page (one row, the metrics below as columns)
#   OUT_DIR/scan_profile.md: one table, a column per kernel (bench/peers/ncu_counters_table.py)
set -uo pipefail
BUILD="${1:?usage: bench/scan_profile.sh BUILD_DIR OUT_DIR [op] [N]}"
OUT="${2:?usage: bench/scan_profile.sh BUILD_DIR OUT_DIR [op] [N]}"
OP="${3:-scan}"
N="${4:-16384}"
HERE="$(cd "$(dirname "$0")" && pwd)"
command -v ncu >/dev/null || { echo "scan_profile.sh: ncu (Nsight Compute) is not on the PATH" >&2; exit 2; }
mkdir -p "$OUT"
METRICS=gpu__time_duration.sum,launch__registers_per_thread,launch__shared_mem_per_block_dynamic
METRICS+=,launch__occupancy_limit_registers,launch__occupancy_limit_shared_mem,launch__grid_size
METRICS+=,sm__maximum_warps_per_active_cycle_pct,sm__warps_active.avg.pct_of_peak_sustained_active
METRICS+=,sm__issue_active.avg.pct_of_peak_sustained_active,dram__throughput.avg.pct_of_peak_sustained_elapsed
METRICS+=,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_fma.avg.pct_of_peak_sustained_active
METRICS+=,sm__inst_executed_pipe_alu.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_lsu.avg.pct_of_peak_sustained_active
METRICS+=,smsp__average_warp_latency_per_inst_issued.ratio,smsp__inst_executed.sum
METRICS+=,"regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio"
status=0
for kernel in scan_forward_kernel scan_backward_kernel; do
  csv="$OUT/${kernel}_${OP}_${N}.csv"
  ncu --kernel-name "$kernel" --launch-count 1 --metrics "$METRICS" --csv --page raw \
    "$BUILD/mixlab" kernel_bench /dev/null --ops="$OP" --lengths="$N" >"$csv.log" 2>&1 || status=1
  # ncu's CSV rows (header, units, data) start with a quote; the program's own output is left in the log
  grep '^"' "$csv.log" >"$csv" || { status=1; tail -n 5 "$csv.log"; }
done
python3 "$HERE/peers/ncu_counters_table.py" "$OUT/scan_forward_kernel_${OP}_${N}.csv" "$OUT/scan_backward_kernel_${OP}_${N}.csv" | tee "$OUT/scan_profile.md" || status=1
exit $status
