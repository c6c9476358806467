#!/usr/bin/env bash
# Zoology's MQAR Figure 2, cut to one GPU (experiments/paper/zoology-mqar-cut.json): K `mixlab
# sweep` processes on one database share its points (each point is claimed by one process and
# run once; docs/sweeps.md), so that several tiny trainings keep one GPU busy.  At the deadline
# every worker is interrupted (the point in flight is given back as pending, nothing half-written
# stays), and the database is copied to OUT with `mixlab merge` (a clean single-file copy).
#   Usage: tests/device/zoology_mqar.sh BUILD OUT [K]
#     K                 workers on the GPU (default 12: the models are tiny, one process alone
#                       leaves the GPU waiting on kernel launches)
#     MIXLAB_SPEC       the spec (default experiments/paper/zoology-mqar-cut.json; zoology-mqar-core.json:
#                       13 mixers x 2 settings x 2 widths x 2 learning rates at the paper's example
#                       set, up to 8 epochs: the ordering at the paper's budget per point)
#     MIXLAB_DEADLINE_S seconds before the workers are interrupted (default 510)
#     MIXLAB_DB         resume this database instead of a fresh one (e.g. a copy brought back;
#                       xz- or gzip-compressed when it ends in .xz or .gz; FILE.xz may also be
#                       the parts FILE.xz.00, FILE.xz.01, ... this script returns when one file
#                       would be over the limit)
#     MIXLAB_CURVE_EVERY  train.curve_every for every point (unset: the spec's; the Zoology specs
#                       set 25: a train_log row every 25 optimiser steps and at every evaluation).
#                       Not part of a point's id.
#                       Why: one row per step made the full grid's database 70 MB for 39 points
#                       (281,119 rows), over the 16 MiB a device call returns even compressed,
#                       and session 22's call lost its database that way
#     MIXLAB_GPUS       GPUs the workers are spread over, round robin (e.g. 0,1); unset: the
#                       workers inherit the caller's CUDA_VISIBLE_DEVICES
#     MIXLAB_DEVICE     cuda (default); cpu to try the script itself on a tiny spec
#     MIXLAB_RUN_ROOT   where the workers keep the points' run folders (checkpoints, records;
#                       docs/training.md); default a temporary folder deleted at the end.  A folder
#                       outside the copied tree (e.g. /tmp/zoology-runs) lets the next call on the
#                       same, still warm machine resume each point that was in flight from its
#                       last checkpoint instead of from step 0
#     MIXLAB_TRAIN_EXECUTION  train.execution for every point (e.g. cuda_graph: each training step
#                       one CUDA-graph replay; docs/training.md); unset: the spec's.  It is not
#                       part of a point's id, so a database resumes across a change of it
#     MIXLAB_MPS=1      run the workers under NVIDIA's MPS daemon, started here and stopped at the
#                       end: without it the K processes take turns on the GPU (time slices), with it
#                       their small kernels can share the SMs (docs/results/zoology-mqar/README.md
#                       measured ~100 steps/s for 12 workers together without it); skipped, with a
#                       line in summary.txt, where nvidia-cuda-mps-control is missing
# OUT receives zoology-mqar.db.xz (or its parts zoology-mqar.db.xz.00, .01, ... of 15 MiB each:
# cat them back into one file), summary.txt and logs.tgz (the worker logs and gpu.csv, the
# utilisation every 5 s: one archive, so that a device call's few returned files hold the database).
# Draw the report on the CPU: xz -dk OUT/zoology-mqar.db.xz, then
# mixlab report --db OUT/zoology-mqar.db --best-over train.lr --out R
set -euo pipefail
BUILD=${1:?usage: tests/device/zoology_mqar.sh BUILD OUT [K]}
OUT=${2:?usage: tests/device/zoology_mqar.sh BUILD OUT [K]}
K=${3:-12}
SPEC=${MIXLAB_SPEC:-experiments/paper/zoology-mqar-cut.json}
DEADLINE=${MIXLAB_DEADLINE_S:-510}
DEVICE=${MIXLAB_DEVICE:-cuda}
MIXLAB=$BUILD/mixlab
# The commit stamped on the rows: a device's copy of the tree carries a git that lags it, so the
# commit written beside the tree (.devicedeps/commit, as scripts/device_call.sh reads it) wins.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[[ -z "${MIXLAB_GIT_COMMIT:-}" && -f "$ROOT/.devicedeps/commit" ]] && export MIXLAB_GIT_COMMIT="$(cat "$ROOT/.devicedeps/commit")"
EXTRA=()
[[ -n "${MIXLAB_CURVE_EVERY:-}" ]] && EXTRA+=(--set "train.curve_every=$MIXLAB_CURVE_EVERY")
[[ -n "${MIXLAB_TRAIN_EXECUTION:-}" ]] && EXTRA+=(--set "train.execution=$MIXLAB_TRAIN_EXECUTION")
# xz where the machine has it, else Python's lzma (the same format).
xz_compress() { if command -v xz >/dev/null; then xz -9 -T0 -c; else python3 -c 'import lzma, sys; sys.stdout.buffer.write(lzma.compress(sys.stdin.buffer.read(), preset=9))'; fi; }
xz_expand() { if command -v xz >/dev/null; then xz -dc; else python3 -c 'import lzma, sys; sys.stdout.buffer.write(lzma.decompress(sys.stdin.buffer.read()))'; fi; }
mkdir -p "$OUT"
WORK=$(mktemp -d)
DB=$WORK/zoology-mqar.db
RUN_ROOT=${MIXLAB_RUN_ROOT:-$WORK/runs}
if [[ "${MIXLAB_DB:-}" == *.xz && ! -f $MIXLAB_DB && -f $MIXLAB_DB.00 ]]; then cat "$MIXLAB_DB".[0-9][0-9] | xz_expand >"$DB"
elif [[ "${MIXLAB_DB:-}" == *.xz ]]; then xz_expand <"$MIXLAB_DB" >"$DB"
elif [[ "${MIXLAB_DB:-}" == *.gz ]]; then gunzip -c "$MIXLAB_DB" >"$DB"
elif [[ -n "${MIXLAB_DB:-}" ]]; then cp "$MIXLAB_DB" "$DB"; fi

"$MIXLAB" sweep "$SPEC" --dry-run | tail -1 >"$OUT/summary.txt"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >>"$OUT/summary.txt" 2>/dev/null || true
( while sleep 5; do
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null || break
  done ) >"$OUT/gpu.csv" &
sampler=$!

mps=""
if [[ "${MIXLAB_MPS:-}" == 1 && $DEVICE == cuda ]]; then
  if command -v nvidia-cuda-mps-control >/dev/null; then
    export CUDA_MPS_PIPE_DIRECTORY=$WORK/mps-pipe CUDA_MPS_LOG_DIRECTORY=$WORK/mps-log
    mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
    if nvidia-cuda-mps-control -d; then mps=1; echo "MPS: on" >>"$OUT/summary.txt"
    else echo "MPS: the daemon did not start; the workers take turns on the GPU" >>"$OUT/summary.txt"; fi
  else
    echo "MPS: nvidia-cuda-mps-control not found; the workers take turns on the GPU" >>"$OUT/summary.txt"
  fi
fi

start=$(date +%s)
pids=()
gpus=()
[[ -n "${MIXLAB_GPUS:-}" ]] && IFS=, read -r -a gpus <<<"$MIXLAB_GPUS"
for k in $(seq 1 "$K"); do
  (( ${#gpus[@]} > 0 )) && export CUDA_VISIBLE_DEVICES=${gpus[$(( (k - 1) % ${#gpus[@]} ))]}
  # Two CPU threads each: K workers share the host's cores (data generation, kernel launches).
  OMP_NUM_THREADS=2 timeout -s INT -k 60 "$DEADLINE" \
    "$MIXLAB" sweep "$SPEC" --device "$DEVICE" --db "$DB" --run-root "$RUN_ROOT" "${EXTRA[@]}" >"$OUT/worker$k.log" 2>&1 &
  pids+=($!)
  sleep 1  # the first worker creates the database; the others find it
done
failed=0
for pid in "${pids[@]}"; do
  status=0
  wait "$pid" || status=$?
  # 0: its points are done; 130 / 124: interrupted at the deadline (resumable); else a failure.
  [[ $status == 0 || $status == 130 || $status == 124 ]] || failed=1
done
kill "$sampler" 2>/dev/null || true
[[ -n "$mps" ]] && { echo quit | nvidia-cuda-mps-control || true; }
elapsed=$(( $(date +%s) - start ))

{
  echo "workers: $K, wall: ${elapsed} s, deadline: ${DEADLINE} s"
  if [[ -f "$DB" ]]; then
    # Compressed, in parts of 15 MiB when over that: a device call returns files of at most 16
    # MiB (session 15's first run of the core spec and session 22's of the short spec did not
    # come back).  xz: the full grid's 70 MB database is 10.3 MB, against 16.3 MB gzipped.
    "$MIXLAB" merge "$DB" --out "$WORK/merged.db" >/dev/null && xz_compress <"$WORK/merged.db" >"$OUT/zoology-mqar.db.xz"
    if (( $(stat -c %s "$OUT/zoology-mqar.db.xz") > 15 * 1024 * 1024 )); then
      split -b 15M -d "$OUT/zoology-mqar.db.xz" "$OUT/zoology-mqar.db.xz." && rm "$OUT/zoology-mqar.db.xz"
      echo "database returned in parts: cat zoology-mqar.db.xz.[0-9][0-9] > zoology-mqar.db.xz"
    fi
    # The work copy: OUT keeps one file.  Not `| head`: under pipefail its early exit (SIGPIPE)
    # would end the script before the logs are archived.
    "$MIXLAB" show --db "$DB" --summary >"$WORK/show.txt" 2>&1 || true
    sed -n 1,40p "$WORK/show.txt"
  else
    echo "no database was written (every worker stopped before its first point)"
    failed=1
  fi
} >>"$OUT/summary.txt"
cat "$OUT/summary.txt"
# A device call returns at most 8 files: the database and the summary alone, the rest in one archive.
tar -C "$OUT" -czf "$OUT/logs.tgz" gpu.csv $(cd "$OUT" && ls worker*.log 2>/dev/null) && rm -f "$OUT"/worker*.log "$OUT/gpu.csv"
rm -rf "$WORK"
exit $failed
