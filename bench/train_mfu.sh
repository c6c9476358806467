#!/usr/bin/env bash
# Training tokens/s and MFU on one GPU (issue 13): experiments/train-mfu-bench.json, the d_model
# 768 presets trained for 60 steps at 4,096 x 8 tokens, bf16, CUDA-graph steps where possible.
# Prints per point the median tokens/s and MFU of the logged rows after step 10 (the first rows
# hold the capture and the warm-up), the execution mode and the step's model FLOPs.
#
# Usage: bench/train_mfu.sh BUILD_DIR OUT_DIR   ->  OUT_DIR/train-mfu.db, OUT_DIR/train-mfu.md
set -uo pipefail
BUILD="${1:?usage: bench/train_mfu.sh BUILD_DIR OUT_DIR}"
OUT="${2:?usage: bench/train_mfu.sh BUILD_DIR OUT_DIR}"
SPEC="${MIXLAB_SPEC:-$(dirname "$0")/../experiments/train-mfu-bench.json}"  # MIXLAB_SPEC, MIXLAB_DEVICE: to try it on the CPU
mkdir -p "$OUT"
status=0
"$BUILD/mixlab" sweep "$SPEC" --device "${MIXLAB_DEVICE:-cuda}" --db "$OUT/train-mfu.db" --run-root "$OUT/runs" >"$OUT/sweep.log" 2>&1 ||
  { status=1; tail -n 20 "$OUT/sweep.log"; }
rm -rf "$OUT/runs"  # checkpoints of 60-step runs: not worth bringing back
python3 - "$OUT/train-mfu.db" <<'PY' | tee "$OUT/train-mfu.md" || status=1
import sqlite3, statistics, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("""SELECT p.label, t.step, t.tokens, t.flops, t.tokens_per_s, t.mfu, t.peak_flops, t.execution
                     FROM train_log t JOIN points p ON p.point_id = t.point_id ORDER BY p.label, t.step""").fetchall()
by = {}
for label, *rest in rows:
    by.setdefault(label, []).append(rest)
print("| point | execution | tokens/s | MFU | model FLOPs per step | ms per step | peak (measured) |")
print("|---|---|---|---|---|---|---|")
for label, r in by.items():
    late = [x for x in r if x[0] > 10] or r
    tps = statistics.median(x[3] for x in late)
    mfu = statistics.median(x[4] for x in late)
    step_tokens, step_flops = r[0][1] / r[0][0], r[0][2] / r[0][0]
    print(f"| {label} | {late[-1][6]} | {tps:,.0f} | {100 * mfu:.1f}% | {step_flops:.3e} | "
          f"{1e3 * step_tokens / tps:.2f} | {late[-1][5] / 1e12:.0f} TFLOP/s |")
PY
exit $status
