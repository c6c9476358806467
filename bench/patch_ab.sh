#!/usr/bin/env bash
# A same-call A/B of a kernel change that has not landed (a patch against this tree) on one GPU
# machine.  Unlanded branches do not outlive a session's checkout; a patch under bench/experiments/
# does, and this measures it in one call:
#   1. build `mixlab` from the tree (A) and keep a copy of it
#   2. apply PATCH; build `mixlab` (B) and `mixlab_tests`; run GTEST_FILTER on B (a B that fails
#      its tests is not timed)
#   3. time A, B, A, B (`mixlab kernel_bench --ops=OPS`: CUDA events, L2 flushed between repeats)
#   4. take PATCH back out and rebuild, so later steps of the call measure the tree
# Results: OUT/a1.csv, b1.csv, a2.csv, b2.csv, bench.log, tests_b.log and patch_ab.md (the table,
# bench/patch_ab_table.py).
#   Usage: bench/patch_ab.sh BUILD OUT PATCH OPS [GTEST_FILTER] [KERNEL_BENCH_ARGS...]
#   BUILD  a configured CUDA build of this tree (scripts/device_call.sh `suite` or `bin` made it)
#   e.g.   bench/patch_ab.sh /tmp/build-gpu $OUT/ab bench/experiments/scan-occupancy.patch \
#              scan,scan_narrow '*Scan*:*scan*'
set -euo pipefail
BUILD="${1:?usage: bench/patch_ab.sh BUILD OUT PATCH OPS [GTEST_FILTER] [KERNEL_BENCH_ARGS...]}"
OUT="${2:?usage: bench/patch_ab.sh BUILD OUT PATCH OPS [GTEST_FILTER] [KERNEL_BENCH_ARGS...]}"
PATCH="${3:?usage: bench/patch_ab.sh BUILD OUT PATCH OPS [GTEST_FILTER] [KERNEL_BENCH_ARGS...]}"
OPS="${4:?usage: bench/patch_ab.sh BUILD OUT PATCH OPS [GTEST_FILTER] [KERNEL_BENCH_ARGS...]}"
FILTER="${5:-}"
shift $(($# < 5 ? $# : 5))
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PATCH="$(realpath "$PATCH")"
[[ -f $BUILD/build.ninja || -f $BUILD/Makefile ]] || { echo "patch_ab.sh: $BUILD is not a configured build" >&2; exit 2; }
mkdir -p "$OUT"
cd "$ROOT"
# apply [--check | -R]: git apply works outside a repository (the device's tree is a copy without
# .git); patch(1) where git is missing.
apply() {
  if command -v git >/dev/null; then git apply "$@" "$PATCH"; return; fi
  case ${1:-} in
    --check) patch -p1 -s --dry-run <"$PATCH" >/dev/null ;;
    -R) patch -p1 -s -R <"$PATCH" ;;
    *) patch -p1 -s <"$PATCH" ;;
  esac
}
apply --check
applied=0
restore() { if ((applied)); then apply -R && applied=0 && cmake --build "$BUILD" --target mixlab | tail -1; fi; }
trap restore EXIT
echo "== A: the tree"
cmake --build "$BUILD" --target mixlab | tail -1
cp "$BUILD/mixlab" "$OUT/.mixlab_a"
echo "== B: the tree with $(basename "$PATCH")"
apply && applied=1
if [[ -n $FILTER ]]; then
  cmake --build "$BUILD" --target mixlab mixlab_tests | tail -1
  if ! (cd "$BUILD" && ./mixlab_tests --gtest_filter="$FILTER") >"$OUT/tests_b.log" 2>&1; then
    grep -E "^\[  (FAILED|PASSED)" "$OUT/tests_b.log" | head -20
    echo "patch_ab.sh: B fails its tests ($OUT/tests_b.log); not timed" >&2
    rm -f "$OUT/.mixlab_a"
    exit 1
  fi
  grep -E "^\[  PASSED" "$OUT/tests_b.log"
else
  cmake --build "$BUILD" --target mixlab | tail -1
fi
cp "$BUILD/mixlab" "$OUT/.mixlab_b"
for round in 1 2; do
  for side in a b; do
    echo "== $side$round"
    "$OUT/.mixlab_$side" kernel_bench "$OUT/$side$round.csv" --ops="$OPS" "$@" >>"$OUT/bench.log" 2>&1 ||
      { tail -5 "$OUT/bench.log"; exit 1; }
  done
done
rm -f "$OUT/.mixlab_a" "$OUT/.mixlab_b"
python3 "$ROOT/bench/patch_ab_table.py" "$OUT/a1.csv" "$OUT/a2.csv" -- "$OUT/b1.csv" "$OUT/b2.csv" | tee "$OUT/patch_ab.md"
