#!/usr/bin/env bash
# A same-call A/B of one decode-step switch (core/ab_switch.h, docs/gpu.md) or an environment variable
# that a change under test reads, on one GPU:
# mixlab's static decoder on the same build with VARIABLE at A, B, A, B (bench/decode_issue13.sh's
# `mixlab` step, each run its own database, since a run resumes its database and skips what is
# done), then the table (bench/decode_ab_table.py: median ms per step per side, B's change).
#
# Usage: bench/decode_ab.sh BUILD OUT VARIABLE [A B [PRESETS [LENGTHS]]]
#   VARIABLE  e.g. MIXLAB_PDL (a switch of core/ab_switch.h: A 1, the default, B 0)
#   A B       its two values (default 0 1)
#   PRESETS   default mamba-546m,scout-mamba-430m;  LENGTHS default [2048]
#   MIXLAB_SWEEP_S: each run's time limit (default 60 s)
# -> OUT/run1.db .. run4.db, OUT/run*/sweep.log, OUT/decode_ab.md
set -uo pipefail
usage="usage: bench/decode_ab.sh BUILD OUT VARIABLE [A B [PRESETS [LENGTHS]]]"
BUILD="${1:?$usage}"
OUT="${2:?$usage}"
VARIABLE="${3:?$usage}"
A="${4:-0}"
B="${5:-1}"
PRESETS="${6:-mamba-546m,scout-mamba-430m}"
LENGTHS="${7:-[2048]}"
[[ $VARIABLE =~ ^MIXLAB_[A-Z0-9_]+$ ]] || { echo "decode_ab.sh: '$VARIABLE' is not a MIXLAB_ variable ($usage)" >&2; exit 2; }
[[ -x $BUILD/mixlab ]] || { echo "decode_ab.sh: no mixlab in $BUILD (scripts/device_call.sh 'suite' or 'bin' builds it)" >&2; exit 2; }
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$OUT"
status=0
for i in 1 2 3 4; do
  value=$A; ((i % 2 == 0)) && value=$B
  echo "== run $i: $VARIABLE=$value"
  env "$VARIABLE=$value" MIXLAB_DECODE_PRESETS="$PRESETS" MIXLAB_DECODE_LENGTHS="$LENGTHS" \
    MIXLAB_DECODE_DB="$OUT/run$i.db" MIXLAB_SWEEP_S="${MIXLAB_SWEEP_S:-60}" \
    "$HERE/decode_issue13.sh" "$BUILD" "$OUT/run$i" mixlab || status=1
done
{
  echo "$VARIABLE: A = $A, B = $B; presets $PRESETS, lengths $LENGTHS"
  echo
  python3 "$HERE/decode_ab_table.py" "$OUT/run1.db" "$OUT/run3.db" -- "$OUT/run2.db" "$OUT/run4.db"
} | tee "$OUT/decode_ab.md" || status=1
exit $status
