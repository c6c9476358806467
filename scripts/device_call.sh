#!/usr/bin/env bash
# One call on a lent GPU machine that copies the working tree per call: several steps in order
# within a wall-time limit, results under $OUT (the folder that comes back).
#
# Usage: scripts/device_call.sh LIMIT_SECONDS STEP...
#   suite              scripts/gpu.sh $OUT/gpu none: the CUDA build (in $MIXLAB_GPU_BUILD,
#                      default /tmp/build-gpu, reused while the machine stays warm) + whole suite
#   build              only rebuild $MIXLAB_GPU_BUILD on a warm machine: everything after a `suite`,
#                      only the `mixlab` binary after a `bin`
#   bin                configure if needed and build only the `mixlab` binary (no suite): for a
#                      call that measures with a commit whose suite already passed on the device
#   trainstep          bench/train_step.sh (training steps, eager / graphs / PyTorch peer)
#   trainmfu           bench/train_mfu.sh (training tokens/s and MFU of the d_model 768 presets)
#   breakdown          bench/kernel_breakdown.sh (per-kernel times, mixlab and its peer)
#   scanprofile        bench/scan_profile.sh: Nsight Compute counters of the scan's forward and
#                      backward kernels at batch 8, E 2048, N 16k (why the scan misses its target)
#   attnprofile        bench/attention_profile.sh: Nsight Compute counters of the sm90 window kernels
#                      and of FlexAttention's, d 64 and 128, N 16k (why the window trails Flex)
#   scoutprofile       bench/scout_profile.sh: Nsight Compute counters of each kernel of SCOUT's sm90
#                      forward and backward, d 64 and 128, N 4k (which pass over memory sets its time)
#   decodeab:VAR[:A:B[:PRESETS]]  bench/decode_ab.sh on the build (after `suite` or `bin`): the decode
#                      step with VAR at A, B, A, B (default 0, 1; presets mamba-546m,scout-mamba-430m;
#                      2k), table in $OUT/ab-VAR/decode_ab.md (e.g. decodeab:MIXLAB_PDL:1:0)
#   racecheck          compute-sanitizer racecheck (one report per hazard) over the sm90 kernels'
#                      tests (`Sm90*`) of the build a `suite` made; the summary line printed, the
#                      log gzipped to $OUT/racecheck.log.gz (session 21: 0 hazards)
#   kernels:OPS        mixlab kernel_bench --ops=OPS with the peers of the same ops, tables in
#                      $OUT/k (after a `suite` or `bin` on this machine), e.g. kernels:scan,scan_narrow
#                      (the scan at batch 8 and at batch 1, where it cuts time into slices)
#   zoology:SPEC       tests/device/zoology_mqar.sh with 12 workers under MPS on SPEC (a file under
#                      experiments/paper/, e.g. zoology-mqar-short), resuming $MIXLAB_ZOOLOGY_DB
#                      (default docs/results/zoology-mqar/zoology-mqar-full.db.xz) until 20 s before
#                      the limit; run folders in /tmp/zoology-runs, so the next call on the same warm
#                      machine resumes the points in flight; database and logs in $OUT/zoo
#   scout:SECONDS:WHAT bench/scout_paper.sh on $MIXLAB_SCOUT_DIR (default .devicedeps/scout; WHAT:
#                      decode,prefill,...), its database gzipped to $OUT/scout-paper.db.gz
#   ab:NAME            bench/patch_ab.sh on bench/experiments/NAME.patch (after `suite` or `bin`): the
#                      tree against the tree with the patch in this call, its ops and tests from the
#                      patch's header; table in $OUT/ab-NAME/patch_ab.md.  B's tests and each
#                      timed run are killed after MIXLAB_AB_TEST_TIMEOUT / MIXLAB_AB_RUN_TIMEOUT
#                      seconds (default 300 each): a patch whose kernel hangs ends its own step only
#   anything else      run as a bash command, with $MIXLAB_CALL_END (the epoch second the call's
#                      limit ends) exported, e.g. `timeout $((MIXLAB_CALL_END - $(date +%s) - 20)) CMD`
# Each step runs under a timeout of what is left of LIMIT_SECONDS less a margin (5-30 s), and a
# step with under 10 s of that left is skipped, so the archive below always runs within the limit.
# More than 8 files under $OUT at the end are archived into $OUT/results.tgz (tables *.md and
# tests.log kept beside it).
# Needs .devicedeps/ carried: the sqlite3 headers (gpu.sh), `commit` (the short commit, stamped on
# rows) and for `scout` the database folder (scripts/device_deps.sh makes the first two).  A carried
# folder replaces the machine's copy: after every call, copy the returned database back into
# .devicedeps/scout before the next one.
set -uo pipefail
T0=$(date +%s)
LIMIT="${1:?usage: scripts/device_call.sh LIMIT_SECONDS STEP...}"
shift
OUT="${OUT:?device_call.sh: \$OUT (the folder that comes back) is not set}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export MIXLAB_GPU_BUILD="${MIXLAB_GPU_BUILD:-/tmp/build-gpu}"
[[ -f .devicedeps/commit ]] && export MIXLAB_GIT_COMMIT="$(cat .devicedeps/commit)"
export MIXLAB_CALL_END=$((T0 + LIMIT))
left() { echo $((LIMIT - ($(date +%s) - T0))); }
# run_for MARGIN CMD...: CMD under a timeout of what is left of LIMIT less MARGIN seconds; skipped,
# and said so, when that is under MIN_STEP.  (A budget computed as 0 or less must never reach
# `timeout`, which reads 0 as "no limit": session 37's last A/B started with 20 s left, ran past
# the device's limit, and none of the call's files came back.)
MIN_STEP=10
run_for() {
  local margin=$1 budget
  shift
  budget=$(($(left) - margin))
  if ((budget < MIN_STEP)); then
    echo "== skipped: $(left) s left of $LIMIT (a step needs $((margin + MIN_STEP)))"
    return 0
  fi
  timeout "$budget" "$@"
}
for step in "$@"; do
  echo "== $step at +$(($(date +%s) - T0)) s"
  case $step in
    suite) run_for 15 scripts/gpu.sh "$OUT/gpu" none 2>&1 | tail -25 ;;
    build)  # what the warm machine has built before: everything after `suite`, the binary after `bin`
      target=(); [[ -x $MIXLAB_GPU_BUILD/mixlab_tests ]] || target=(--target mixlab)
      run_for 15 cmake --build "$MIXLAB_GPU_BUILD" "${target[@]}" 2>&1 | tail -2 ;;
    bin) MIXLAB_GPU_TARGET=mixlab run_for 15 scripts/gpu.sh "$OUT/gpu" none 2>&1 | tail -5 ;;
    trainstep) run_for 30 bench/train_step.sh "$MIXLAB_GPU_BUILD" "$OUT/ts" 2>&1 | tail -30 ;;
    trainmfu) run_for 30 bench/train_mfu.sh "$MIXLAB_GPU_BUILD" "$OUT/mfu" 2>&1 | tail -12 ;;
    breakdown) run_for 30 bench/kernel_breakdown.sh "$MIXLAB_GPU_BUILD" "$OUT/breakdown" 2>&1 | tail -40 ;;
    scanprofile) run_for 20 bench/scan_profile.sh "$MIXLAB_GPU_BUILD" "$OUT/scanprofile" 2>&1 | tail -30 ;;
    scoutprofile) run_for 20 bench/scout_profile.sh "$MIXLAB_GPU_BUILD" "$OUT/scoutprofile" 2>&1 | tail -40 ;;
    attnprofile) run_for 20 bench/attention_profile.sh "$MIXLAB_GPU_BUILD" "$OUT/attnprofile" 2>&1 | tail -40 ;;
    decodeab:*)  # decodeab:VARIABLE[:A:B[:PRESETS]], e.g. decodeab:MIXLAB_PDL:1:0
      IFS=: read -r _ variable a b presets <<<"$step"
      run_for 20 bench/decode_ab.sh "$MIXLAB_GPU_BUILD" "$OUT/ab-$variable" "$variable" "${a:-0}" "${b:-1}" \
        ${presets:+"$presets"} 2>&1 | tail -12 ;;
    racecheck)
      (cd "$MIXLAB_GPU_BUILD" && run_for 20 compute-sanitizer --tool racecheck --racecheck-report hazard \
        ./mixlab_tests --gtest_filter='Sm90*') >"$OUT/racecheck.log" 2>&1
      grep -E "RACECHECK SUMMARY|PASSED|FAILED" "$OUT/racecheck.log" | head -5
      gzip -f "$OUT/racecheck.log" ;;
    kernels:*)
      ops=${step#kernels:}
      MIXLAB_GPU_SUITE=0 MIXLAB_PEER_OPS=$ops run_for 20 scripts/gpu.sh "$OUT/k" kernels --ops="$ops" 2>&1 | tail -30 ;;
    zoology:*)
      # Session 27: a 360 s deadline finished none of the short spec's (128, 8) points (~6.5 min
      # each at 12 workers); their run folders survive only while this machine stays warm.
      (( $(left) - 80 < 450 )) && echo "== warning: a deadline of $(( $(left) - 80 )) s is shorter than one" \
        "(128, 8) point (~390 s); points in flight resume only on this warm machine (590 s calls)"
      MIXLAB_MPS=1 MIXLAB_SPEC="experiments/paper/${step#zoology:}.json" MIXLAB_RUN_ROOT=/tmp/zoology-runs \
        MIXLAB_DB="${MIXLAB_ZOOLOGY_DB:-docs/results/zoology-mqar/zoology-mqar-full.db.xz}" \
        MIXLAB_DEADLINE_S=$(($(left) - 80)) run_for 20 tests/device/zoology_mqar.sh "$MIXLAB_GPU_BUILD" "$OUT/zoo" 12 2>&1 | tail -8 ;;
    ab:*)
      name=${step#ab:}
      rebuild=1; [[ $step == "${*: -1}" ]] && rebuild=0  # the last step: no build back to the tree
      MIXLAB_AB_REBUILD=$rebuild run_for 20 bench/patch_ab.sh "$MIXLAB_GPU_BUILD" "$OUT/ab-$name" \
        "bench/experiments/$name.patch" 2>&1 |
        tail -30 ;;
    scout:*)
      IFS=: read -r _ seconds what <<<"$step"
      budget=$(($(left) - 25))
      ((seconds < budget)) && budget=$seconds
      ((budget < MIN_STEP)) && { echo "== skipped: $(left) s left of $LIMIT"; continue; }
      scout_dir="${MIXLAB_SCOUT_DIR:-.devicedeps/scout}"
      bench/scout_paper.sh "$MIXLAB_GPU_BUILD" "$scout_dir" "$budget" ${what//,/ } 2>&1 | tail -5
      gzip -c "$scout_dir/scout-paper.db" >"$OUT/scout-paper.db.gz"
      tar -C "$scout_dir" -czf "$OUT/scout-logs.tgz" --exclude scout-paper.db . 2>/dev/null
      ;;
    *) run_for 5 bash -c "$step" 2>&1 | tail -40 ;;
  esac
done
# A call returns at most 8 files (16 MiB each): when the steps left more, everything goes into
# one archive, and only the tables (*.md) and the suite's log stay beside it.  The archive leaves
# out the training runs' folders (checkpoints); over 15 MiB it leaves out the databases too
# (session 16 lost a breakdown's CSVs to an archive of 20 MiB).
if (( $(find "$OUT" -type f | wc -l) > 8 )); then
  archive="$(mktemp --suffix=.tgz)"
  tar -C "$OUT" --exclude='*.runs' --exclude='./*/runs' -czf "$archive" .
  if (( $(stat -c %s "$archive") > 15 * 1024 * 1024 )); then
    echo "== results.tgz over 15 MiB: archived again without the databases (*.db)"
    tar -C "$OUT" --exclude='*.runs' --exclude='./*/runs' --exclude='*.db' -czf "$archive" .
  fi
  find "$OUT" -type f ! -name '*.md' ! -name tests.log -delete && mv "$archive" "$OUT/results.tgz"
  echo "== $(tar -tzf "$OUT/results.tgz" | grep -vc '/$') files archived in results.tgz; kept: $(cd "$OUT" && find . -type f | tr '\n' ' ')"
fi
echo "== done at +$(($(date +%s) - T0)) s"
