#!/usr/bin/env bash
# Build mixlab with its CUDA kernels, run the whole test suite (CPU and CUDA tests) under the
# wheel's LibTorch, and run a named benchmark, in one call (one device lease).  Logs, CSVs and the
# PERF tables land in OUTDIR; the exit status is the suite's (non-zero on any failure or crash).
#
# Usage: scripts/gpu.sh OUTDIR [benchmark]
#   benchmark: none | cli | quick | kernels (default: kernels; the full table of docs/PERF.md);
#   cli: every command with --device cuda over every registry entry (scripts/gpu_cli.sh)
#   Extra arguments after the benchmark go to `mixlab kernel_bench` (e.g. --ops=scan); the peers
#   take the same subset from MIXLAB_PEER_OPS (e.g. MIXLAB_PEER_OPS=causal,swa ... kernels --ops=swa).
# MIXLAB_GPU_TARGET=mixlab: build only that target and stop (no suite, no benchmark), for device
# calls that only measure with an already tested commit.
# MIXLAB_GPU_SUITE=0: build everything and run the benchmark without the suite (a later call on a
# warm machine whose earlier call ran the suite at the same commit).
# Needs: nvcc, the PyTorch wheel (its LibTorch), CMake, ninja; sqlite3.h may be carried in
# .devicedeps/ (the GPU image has libsqlite3.so.0 but no header).
set -uo pipefail
OUT="$(mkdir -p "${1:?usage: scripts/gpu.sh OUTDIR [benchmark]}" && cd "$1" && pwd)"
BENCH="${2:-kernels}"
shift $(( $# > 1 ? 2 : 1 ))
BENCH_ARGS=("$@")
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${MIXLAB_GPU_BUILD:-$ROOT/build-gpu}"
cd "$ROOT"

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv >"$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"

extra=()
if [[ -f .devicedeps/sqlite3.h ]]; then extra+=(-DMIXLAB_EXTRA_INCLUDE="$ROOT/.devicedeps"); fi
if ! ldconfig -p | grep -q 'libsqlite3.so '; then
  lib=$(ldconfig -p | awk '/libsqlite3.so.0 /{print $NF; exit}')
  if [[ -n "$lib" ]]; then
    mkdir -p /tmp/mixlab-sqlite && ln -sf "$lib" /tmp/mixlab-sqlite/libsqlite3.so
    extra+=(-DSQLITE3_LIBRARY=/tmp/mixlab-sqlite/libsqlite3.so)
  fi
fi
TORCH_PREFIX=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
export PATH="/usr/local/cuda/bin:$PATH"
{
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
    -DTORCH_CUDA_ARCH_LIST=9.0a -DCMAKE_CUDA_ARCHITECTURES=90a -DMIXLAB_WITH_CUDA=ON "${extra[@]}" &&
  cmake --build "$BUILD" -j "$(nproc)" ${MIXLAB_GPU_TARGET:+--target "$MIXLAB_GPU_TARGET"}
} 2>&1 | tee "$OUT/build.log" | grep -E 'error|warning: .*(spill|stack)|FAILED|mixlab:' | head -50
status=${PIPESTATUS[0]}
if [[ -n ${MIXLAB_GPU_TARGET:-} ]]; then
  [[ $status -eq 0 ]] || { echo "gpu.sh: build of $MIXLAB_GPU_TARGET failed"; tail -40 "$OUT/build.log"; }
  exit "$status"
fi
if [[ $status -ne 0 || ! -x "$BUILD/mixlab_tests" ]]; then
  echo "gpu.sh: build failed (see $OUT/build.log)"; tail -40 "$OUT/build.log"; exit 1
fi

# The whole suite, not only the CUDA tests: everything must pass under LibTorch 2.x too.  Each test
# runs in its own process (ctest), so one crash cannot hide the rest.
# One thread per test process: ctest runs one process per core, and LibTorch's default (a thread
# per core in every process) oversubscribes the CPU many times over.
tests_status=0
if [[ ${MIXLAB_GPU_SUITE:-1} != 0 ]]; then
  (cd "$BUILD" && OMP_NUM_THREADS=1 ctest -j "$(nproc)" --timeout 900 --output-on-failure) >"$OUT/tests.log" 2>&1
  tests_status=$?
  grep -E "tests passed|tests failed|\(Failed\)|\(SEGFAULT\)|\(Subprocess aborted\)|\(Timeout\)|Exception" "$OUT/tests.log" | head -60
  echo "gpu.sh: the whole suite on $(head -2 "$OUT/gpu.txt" | tail -1 | cut -d, -f1): exit $tests_status (log: $OUT/tests.log)"
fi

case "$BENCH" in
  none) ;;
  cli) "$ROOT/scripts/gpu_cli.sh" "$BUILD" "$OUT" || tests_status=1 ;;
  quick | kernels)
    flag=(); [[ $BENCH == quick ]] && flag=(--quick)
    "$BUILD/mixlab" kernel_bench "$OUT/mixlab_kernels.csv" "${flag[@]}" "${BENCH_ARGS[@]}" 2>&1 | tee "$OUT/bench.log"
    if [[ -z "${MIXLAB_SKIP_PEERS:-}" ]]; then
      export MIXLAB_BIN="$(cd "$BUILD" && pwd)/mixlab"  # the peers read its op table (--list-ops)
      (cd bench/peers && PYTHONUNBUFFERED=1 python3 scan_peers.py "$OUT/peers_scan.csv" "${flag[@]}") 2>&1 | tee -a "$OUT/bench.log"
      (cd bench/peers && PYTHONUNBUFFERED=1 python3 attention_peers.py "$OUT/peers_attention.csv" "${flag[@]}") 2>&1 | tee -a "$OUT/bench.log" | grep -v Warning
    fi
    python3 bench/peers/make_table.py "$OUT/mixlab_kernels.csv" "$OUT/peers_attention.csv" "$OUT/peers_scan.csv" | tee "$OUT/perf_table.md"
    ;;
  *) echo "gpu.sh: unknown benchmark '$BENCH' (valid: none, cli, quick, kernels)"; exit 2 ;;
esac
exit $tests_status
