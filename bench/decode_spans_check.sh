#!/usr/bin/env bash
# Does measure.decode_timing = "spans" (docs/decode.md, "Timing by spans") agree with timing the
# whole generation?  The same released presets at the same lengths, bf16, batch 16, random init,
# both ways in one process per (preset, timing); the rows go to OUT_DIR/spans-check.db and a table
# of tokens/s side by side, with spans / generate, to OUT_DIR/spans-check.md.
#
# Usage: bench/decode_spans_check.sh BUILD_DIR OUT_DIR [lengths, default 2048,4096,8192]
#        [presets, default qwen2-340m,scout-swa-470m,scout-mamba-430m]
set -uo pipefail
BUILD="${1:?usage: bench/decode_spans_check.sh BUILD_DIR OUT_DIR [lengths] [presets]}"
OUT="${2:?usage: bench/decode_spans_check.sh BUILD_DIR OUT_DIR [lengths] [presets]}"
LENGTHS="${3:-2048,4096,8192}"
PRESETS="${4:-qwen2-340m,scout-swa-470m,scout-mamba-430m}"
mkdir -p "$OUT"
DB="$OUT/spans-check.db"
status=0
for preset in ${PRESETS//,/ }; do
  for timing in generate spans; do
    echo "[$preset $timing] $LENGTHS"
    "$BUILD/mixlab" bench --preset "$preset" --seq "$LENGTHS" --phases decode --batch 16 --device cuda \
      --dtype bfloat16 --set measure.decode_timing="$timing" --set measure.time_budget_s=240 --db "$DB" \
      >"$OUT/${preset}_${timing}.log" 2>&1 || { status=1; tail -n 5 "$OUT/${preset}_${timing}.log"; }
  done
done
python3 - "$DB" <<'PY' | tee "$OUT/spans-check.md"
import json, sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute(
    "SELECT p.label, m.seq_len, m.extra_json FROM measurements m JOIN points p USING(point_id) "
    "WHERE m.phase = 'decode' AND m.status = 'ok'").fetchall()
rate = {}
for model, n, extra in rows:
    extra = json.loads(extra or "{}")
    rate[(model, n, extra.get("generate_timing", "generate"))] = extra.get("generate_tokens_per_s")
print("| model | N | generate tokens/s | spans tokens/s | spans / generate |")
print("|---|---|---|---|---|")
for model, n in sorted({(m, n) for m, n, _ in rate}):
    g, s = rate.get((model, n, "generate")), rate.get((model, n, "spans"))
    if g and s:
        print(f"| {model} | {n} | {g:,.0f} | {s:,.0f} | {s / g:.3f} |")
    else:
        print(f"| {model} | {n} | {g} | {s} | - |")
PY
exit $status
