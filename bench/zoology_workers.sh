#!/usr/bin/env bash
# How many workers should share one GPU for Zoology-sized trainings: runs
# tests/device/zoology_mqar.sh on experiments/zoology-workers-bench.json (192 attention points of one
# cost, a fresh database each time) with K workers for SECONDS, for each K, and counts the
# optimiser steps the workers logged (bench/count_steps.py).
#   Usage: bench/zoology_workers.sh BUILD OUT [SECONDS per K, default 60] [Ks, default 1,2,4,12]
#     MIXLAB_MPS=1 as for zoology_mqar.sh (the workers under NVIDIA's MPS daemon)
#     MIXLAB_DEVICE=cpu to try the script on the CPU
#   OUT/K<k>/ (each run's summary and logs), OUT/workers.md (the table), also on stdout.
set -uo pipefail
BUILD=${1:?usage: bench/zoology_workers.sh BUILD OUT [SECONDS] [Ks]}
OUT=${2:?usage: bench/zoology_workers.sh BUILD OUT [SECONDS] [Ks]}
SECONDS_PER_K=${3:-60}
KS=${4:-1,2,4,12}
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$OUT"
for k in ${KS//,/ }; do
  MIXLAB_SPEC="$HERE/../experiments/zoology-workers-bench.json" MIXLAB_DEADLINE_S=$SECONDS_PER_K MIXLAB_DB= \
    "$HERE/../tests/device/zoology_mqar.sh" "$BUILD" "$OUT/K$k" "$k" >/dev/null 2>&1
  echo "[workers] K = $k: $(grep -m1 '^workers:' "$OUT/K$k/summary.txt" 2>/dev/null || echo 'no summary')"
done
python3 "$HERE/count_steps.py" --table "$OUT" "$SECONDS_PER_K" ${KS//,/ } | tee "$OUT/workers.md"
