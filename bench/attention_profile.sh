#!/usr/bin/env bash
# Why the sliding window trails FlexAttention (issue 14's SWA target, docs/PERF.md): Nsight Compute
# counters of mixlab's sm90 window kernels (attention/cuda/sm90: the forward and the backward, head
# dim 64 and 128; the first launch of each in `mixlab kernel_bench --ops=swa --lengths=N`) and of
# every kernel of one Flex forward and one Flex forward+backward of the same shapes
# (bench/peers/flex_profile.py), with the counters that say which limit binds: tensor-pipe cycles
# (wgmma), the exp2 pipe, issue slots, shared memory, L2 and DRAM traffic, and the stall reasons.
#
# Usage: bench/attention_profile.sh BUILD_DIR OUT_DIR [N, default 16384]
#   OUT_DIR/<kernel>_<d>_<N>.csv, OUT_DIR/flex_<d>_<N>.csv: ncu's raw pages (a row per launch)
#   OUT_DIR/attention_profile.md: one table (bench/peers/ncu_counters_table.py), a column per kernel
set -uo pipefail
BUILD="${1:?usage: bench/attention_profile.sh BUILD_DIR OUT_DIR [N]}"
OUT="${2:?usage: bench/attention_profile.sh BUILD_DIR OUT_DIR [N]}"
N="${3:-16384}"
HERE="$(cd "$(dirname "$0")" && pwd)"
command -v ncu >/dev/null || { echo "attention_profile.sh: ncu (Nsight Compute) is not on the PATH" >&2; exit 2; }
mkdir -p "$OUT"
METRICS=gpu__time_duration.sum,sm__cycles_elapsed.avg.per_second,launch__registers_per_thread
METRICS+=,launch__shared_mem_per_block_dynamic,launch__grid_size,launch__block_size
METRICS+=,sm__warps_active.avg.pct_of_peak_sustained_active,sm__issue_active.avg.pct_of_peak_sustained_active
METRICS+=,"regex:sm__pipe_tensor_op_(gmma|hmma)_cycles_active\.avg\.pct_of_peak_sustained_active"
METRICS+=,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_fma.avg.pct_of_peak_sustained_active
METRICS+=,sm__inst_executed_pipe_alu.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_lsu.avg.pct_of_peak_sustained_active
METRICS+=,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum.pct_of_peak_sustained_elapsed
METRICS+=,lts__throughput.avg.pct_of_peak_sustained_elapsed,lts__t_bytes.sum
METRICS+=,dram__throughput.avg.pct_of_peak_sustained_elapsed,dram__bytes_read.sum
METRICS+=,smsp__average_warp_latency_per_inst_issued.ratio,smsp__inst_executed.sum
METRICS+=,"regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio"
NCU=(ncu --metrics "$METRICS" --csv --page raw)
status=0
# ncu's CSV rows (header, units, data) start with a quote; the program's own output stays in the log
keep_rows() { grep '^"' "$1.log" >"$1" || { status=1; tail -n 5 "$1.log"; }; }
files=()
for d in 64 128; do
  for kernel in window_forward_kernel window_backward_kernel; do
    csv="$OUT/${kernel}_${d}_${N}.csv"
    "${NCU[@]}" --kernel-name-base demangled --kernel-name "regex:${kernel}<${d}>" --launch-count 1 \
      "$BUILD/mixlab" kernel_bench /dev/null --ops=swa --lengths="$N" >"$csv.log" 2>&1 || status=1
    keep_rows "$csv"
    files+=("$csv")
  done
  csv="$OUT/flex_${d}_${N}.csv"
  (cd "$HERE/peers" && MIXLAB_BIN="$BUILD/mixlab" "${NCU[@]}" --profile-from-start off \
    python3 flex_profile.py "$N" "$d") >"$csv.log" 2>&1 || status=1
  keep_rows "$csv"
  files+=("$csv")
done
python3 "$HERE/peers/ncu_counters_table.py" --top 3 "${files[@]}" | tee "$OUT/attention_profile.md" || status=1
exit $status
