#!/usr/bin/env bash
# A same-call A/B of a kernel change that has not landed (a patch against this tree) on one GPU
# machine.  Unlanded branches do not outlive a session's checkout; a patch under bench/experiments/
# does, and this measures it in one call:
#   1. build `mixlab` from the tree (A) and keep a copy of it and of its shared libraries
#   2. apply PATCH; build `mixlab` (B) and `mixlab_tests`; run GTEST_FILTER on B (a B that fails
#      its tests is not timed)
#   3. time A, B, A, B (`mixlab kernel_bench --ops=OPS`: CUDA events, L2 flushed between repeats);
#      MIXLAB_AB_ROUNDS (default 2) rounds of A, B: more for a change near the runs' spread
#   4. take PATCH back out (before the timing) and put A's build back: BUILD is copied once A is
#      built and the copy replaces it after B's snapshot, with the patched sources' old times
#      restored, so later steps of the call measure the tree without rebuilding what the patch
#      touched (where the copy does not fit, the build is rebuilt at the end instead; not with
#      MIXLAB_AB_REBUILD=0, which device_call.sh sets for its last step)
# PATCH applies to the source tree BUILD was configured from (its CMakeCache.txt's
# CMAKE_HOME_DIRECTORY; this repository when BUILD has no cache).  A kernel that never finishes
# (an mbarrier waiting for bytes a wrong count never brings) must not take the rest of the call:
# B's tests run under MIXLAB_AB_TEST_TIMEOUT seconds (default 300) and each timed run under
# MIXLAB_AB_RUN_TIMEOUT (default 300); past it the run is killed and the A/B stops, saying which.
# Results: OUT/a1.csv, b1.csv, a2.csv, b2.csv (.. aR, bR), bench.log, tests_b.log and patch_ab.md
# (the table, bench/patch_ab_table.py, with each row's spread between runs).
#   Usage: bench/patch_ab.sh BUILD OUT PATCH [OPS [GTEST_FILTER [KERNEL_BENCH_ARGS...]]]
#   BUILD  a configured CUDA build of this tree (scripts/device_call.sh `suite` or `bin` made it)
#   OPS, GTEST_FILTER  default to the patch's own header lines `ops: ...` and `tests: ...` (the
#          text before its first `diff`, which git apply and patch skip); "-" takes the default
#   KERNEL_BENCH_ARGS  default to its header line `args: ...` (e.g. `args: --lengths=4096,65536`)
#   e.g.   bench/patch_ab.sh /tmp/build-gpu $OUT/ab bench/experiments/NAME.patch
set -euo pipefail
usage="usage: bench/patch_ab.sh BUILD OUT PATCH [OPS [GTEST_FILTER [KERNEL_BENCH_ARGS...]]]"
BUILD="${1:?$usage}"
OUT="${2:?$usage}"
PATCH="${3:?$usage}"
[[ -f $PATCH ]] || { echo "patch_ab.sh: $PATCH: no such patch" >&2; exit 2; }
ROUNDS="${MIXLAB_AB_ROUNDS:-2}"
TEST_TIMEOUT="${MIXLAB_AB_TEST_TIMEOUT:-300}"
RUN_TIMEOUT="${MIXLAB_AB_RUN_TIMEOUT:-300}"
for variable in MIXLAB_AB_ROUNDS:$ROUNDS MIXLAB_AB_TEST_TIMEOUT:$TEST_TIMEOUT MIXLAB_AB_RUN_TIMEOUT:$RUN_TIMEOUT; do
  [[ ${variable#*:} =~ ^[1-9][0-9]*$ ]] ||
    { echo "patch_ab.sh: ${variable%%:*} must be a whole number ≥ 1 (got '${variable#*:}')" >&2; exit 2; }
done
# A header line `KEY: value` of the patch (before its first diff), or nothing.
header() { sed -n "/^diff /q; s/^$1: *//p" "$PATCH" | head -1; }
OPS="${4:--}"
FILTER="${5:--}"
[[ $OPS == - ]] && OPS="$(header ops)"
[[ $FILTER == - ]] && FILTER="$(header tests)"
[[ -n $OPS ]] || { echo "patch_ab.sh: no OPS given and $PATCH has no 'ops:' header line" >&2; exit 2; }
shift $(($# < 5 ? $# : 5))
if [[ $# -eq 0 && -n "$(header args)" ]]; then
  read -r -a header_args <<<"$(header args)"
  set -- "${header_args[@]}"
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PATCH="$(realpath "$PATCH")"
[[ -f $BUILD/build.ninja || -f $BUILD/Makefile ]] || { echo "patch_ab.sh: $BUILD is not a configured build" >&2; exit 2; }
BUILD="$(realpath "$BUILD")"
TREE="$ROOT"
if [[ -f $BUILD/CMakeCache.txt ]]; then
  TREE="$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD/CMakeCache.txt")"
  [[ -d $TREE ]] || { echo "patch_ab.sh: $BUILD/CMakeCache.txt names no source tree ('$TREE')" >&2; exit 2; }
fi
mkdir -p "$OUT"
OUT="$(realpath "$OUT")"
cd "$TREE"
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
# The files the patch changes (its `--- a/PATH` lines), copied with their times before it applies.
SOURCES="$(mktemp -d)"
save_sources() {
  local path
  while read -r path; do
    [[ -f $path ]] && mkdir -p "$SOURCES/$(dirname "$path")" && cp -p "$path" "$SOURCES/$path"
  done < <(sed -n 's#^--- a/##p' "$PATCH" | sed 's/\t.*//')
}
# Their times back where the content is as it was (then nothing that depends on them is rebuilt).
restore_times() {
  local saved
  while read -r saved; do
    cmp -s "$saved" "${saved#"$SOURCES/"}" && touch -r "$saved" "${saved#"$SOURCES/"}"
  done < <(cd "$SOURCES" && find . -type f | sed "s#^\./#$SOURCES/#")
}
# A's build folder, kept beside it while B is built in its place.
KEEP="$BUILD.patch-ab-a"
kept=0
keep_a() {
  [[ -f $BUILD/CMakeCache.txt && $BUILD != "$TREE" && $BUILD != / ]] || return 0
  rm -rf "$KEEP"
  if cp -a "$BUILD" "$KEEP" 2>/dev/null; then
    kept=1
  else
    rm -rf "$KEEP"
    echo "== no room for a copy of A's build: it is rebuilt at the end"
  fi
}
applied=0
restore() {  # the tree and the build as they came
  if ((applied)); then apply -R && applied=0 && restore_times; fi
  if ((kept)); then rm -rf "$BUILD" && mv "$KEEP" "$BUILD" && kept=0; fi
}
# Each side's `mixlab` with the build's shared libraries (libmixlab_lib.so holds the kernels, and
# the binary's RUNPATH names the build folder): LD_LIBRARY_PATH, searched before RUNPATH, makes
# each copy load its own.  Outside OUT (a call brings OUT back).
BIN="$(mktemp -d)"
trap 'restore; rm -rf "$BIN" "$SOURCES"' EXIT
snapshot() {
  mkdir -p "$BIN/$1" && cp "$BUILD/mixlab" "$BUILD"/*.so "$BIN/$1/"
  local libraries
  libraries="$(LD_LIBRARY_PATH="$BIN/$1${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ldd "$BIN/$1/mixlab")"
  [[ $libraries == *"=> $BIN/$1/libmixlab_lib.so"* ]] ||
    { echo "patch_ab.sh: the copy of side $1 does not load its own libmixlab_lib.so" >&2; exit 1; }
}
# After a command run under `timeout -k 10 SECONDS`: where STATUS says it was killed at the limit,
# says that WHAT did not finish (VARIABLE sets SECONDS) and stops the A/B.
#   stop_if_killed STATUS SECONDS VARIABLE WHAT [MORE]
stop_if_killed() {
  if (($1 == 124 || $1 == 137)); then
    echo "patch_ab.sh: $4 did not finish in $2 s ($3; a hang?), killed${5:-}" >&2
    exit 1
  fi
}
echo "== A: the tree"
cmake --build "$BUILD" --target mixlab | tail -1
snapshot a
keep_a
echo "== B: the tree with $(basename "$PATCH")"
save_sources
apply && applied=1
if [[ -n $FILTER ]]; then
  cmake --build "$BUILD" --target mixlab mixlab_tests | tail -1
  status=0
  (cd "$BUILD" && exec timeout -k 10 "$TEST_TIMEOUT" ./mixlab_tests --gtest_filter="$FILTER") >"$OUT/tests_b.log" 2>&1 ||
    status=$?
  stop_if_killed $status "$TEST_TIMEOUT" MIXLAB_AB_TEST_TIMEOUT "B's tests ($FILTER)" "; not timed ($OUT/tests_b.log)"
  if ((status != 0)); then
    grep -E "^\[  (FAILED|PASSED)" "$OUT/tests_b.log" | head -20
    echo "patch_ab.sh: B fails its tests ($OUT/tests_b.log); not timed" >&2
    exit 1
  fi
  grep -E "^\[  PASSED" "$OUT/tests_b.log"
else
  cmake --build "$BUILD" --target mixlab | tail -1
fi
snapshot b
restore
for ((round = 1; round <= ROUNDS; round++)); do
  for side in a b; do
    echo "== $side$round"
    status=0
    LD_LIBRARY_PATH="$BIN/$side${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" timeout -k 10 "$RUN_TIMEOUT" \
      "$BIN/$side/mixlab" kernel_bench "$OUT/$side$round.csv" --ops="$OPS" "$@" >>"$OUT/bench.log" 2>&1 || status=$?
    stop_if_killed $status "$RUN_TIMEOUT" MIXLAB_AB_RUN_TIMEOUT "run $side$round" " ($OUT/bench.log)"
    if ((status != 0)); then
      tail -5 "$OUT/bench.log"
      exit 1
    fi
  done
done
if [[ ${MIXLAB_AB_REBUILD:-1} == 1 ]]; then  # 0: the call's last step, nothing measures the build after it
  echo "== the build back to the tree"  # nothing to do where A's build came back
  cmake --build "$BUILD" --target mixlab | tail -1
fi
a_runs=() b_runs=()
for ((round = 1; round <= ROUNDS; round++)); do a_runs+=("$OUT/a$round.csv") b_runs+=("$OUT/b$round.csv"); done
python3 "$ROOT/bench/patch_ab_table.py" "${a_runs[@]}" -- "${b_runs[@]}" | tee "$OUT/patch_ab.md"
