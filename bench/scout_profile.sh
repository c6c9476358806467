#!/usr/bin/env bash
# Where SCOUT's sm90 forward+backward spends its time at short N, where issue 14 asks for >= 2x the
# best Flex and d 128 reaches 1.96x (docs/PERF.md): Nsight Compute on each kernel of one forward and
# one backward of the checkpoint scheme (attention/cuda/sm90), head dim 64 and 128, one launch each
# (the first of `mixlab kernel_bench --ops=scout --lengths=N`):
#   checkpoint_forward_kernel        O and lse
#   backward_prologue_kernel         D = rowsum(dO ⊙ O) and the float32 dQ accumulator zeroed
#   checkpoint_keys_backward_kernel  dK, dV of the checkpoints; dQ's partial sums by L2 reductions
#   checkpoint_self_backward_kernel  each token's pair with itself, and dQ, dK, dV written as bf16
# At N <= 4k the attention products are small (about 0.14 ms of tensor work for the forward at d 128,
# N 4k, 2^20 tokens) and the passes over memory set the time: the DRAM bytes read and written per
# kernel, beside its time, say which pass to remove.
#
# Usage: bench/scout_profile.sh BUILD_DIR OUT_DIR [N, default 4096]
#   OUT_DIR/<kernel>_<d>_<N>.csv: ncu's raw page (one row)
#   OUT_DIR/scout_profile.md: one table, a column per kernel (bench/peers/ncu_counters_table.py)
set -uo pipefail
BUILD="${1:?usage: bench/scout_profile.sh BUILD_DIR OUT_DIR [N]}"
OUT="${2:?usage: bench/scout_profile.sh BUILD_DIR OUT_DIR [N]}"
N="${3:-4096}"
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/ncu_counters.sh"
require_ncu scout_profile.sh "$OUT"
status=0
files=()
for d in 64 128; do
  for kernel in checkpoint_forward_kernel backward_prologue_kernel checkpoint_keys_backward_kernel \
    checkpoint_self_backward_kernel; do
    csv="$OUT/${kernel}_${d}_${N}.csv"
    profile_first_launch "$BUILD" "$csv" scout "$N" "${kernel}<[^>]*${d}>" || status=1
    files+=("$csv")
  done
done
python3 "$HERE/peers/ncu_counters_table.py" "${files[@]}" | tee "$OUT/scout_profile.md" || status=1
exit $status
