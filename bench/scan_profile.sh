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
source "$HERE/ncu_counters.sh"
require_ncu scan_profile.sh "$OUT"
status=0
for kernel in scan_forward_kernel scan_backward_kernel; do
  csv="$OUT/${kernel}_${OP}_${N}.csv"
  ncu --kernel-name "$kernel" --launch-count 1 --metrics "$NCU_COUNTERS" --csv --page raw \
    "$BUILD/mixlab" kernel_bench /dev/null --ops="$OP" --lengths="$N" >"$csv.log" 2>&1 || status=1
  keep_ncu_rows "$csv" || status=1
done
python3 "$HERE/peers/ncu_counters_table.py" "$OUT/scan_forward_kernel_${OP}_${N}.csv" "$OUT/scan_backward_kernel_${OP}_${N}.csv" | tee "$OUT/scan_profile.md" || status=1
exit $status
