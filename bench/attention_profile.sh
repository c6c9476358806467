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
source "$HERE/ncu_counters.sh"
require_ncu attention_profile.sh "$OUT"
NCU=(ncu --metrics "$NCU_COUNTERS" --csv --page raw)
status=0
files=()
for d in 64 128; do
  for kernel in window_forward_kernel window_backward_kernel; do
    csv="$OUT/${kernel}_${d}_${N}.csv"
    profile_first_launch "$BUILD" "$csv" swa "$N" "${kernel}<[^>]*${d}>" || status=1
    files+=("$csv")
  done
  csv="$OUT/flex_${d}_${N}.csv"
  (cd "$HERE/peers" && MIXLAB_BIN="$BUILD/mixlab" "${NCU[@]}" --profile-from-start off \
    python3 flex_profile.py "$N" "$d") >"$csv.log" 2>&1 || status=1
  keep_ncu_rows "$csv" || status=1
  files+=("$csv")
done
python3 "$HERE/peers/ncu_counters_table.py" --top 3 "${files[@]}" | tee "$OUT/attention_profile.md" || status=1
exit $status
