#!/usr/bin/env bash
# Training steps per second on one GPU, eager against CUDA graphs (train.execution), on the
# Zoology-sized points of experiments/train-step-bench.json; then the PyTorch peer of the attention
# points (bench/peers/train_step_peer.py: torch.compile, and torch.compile with the whole step as
# a CUDA graph), where python3 has torch; then the table, with the final losses of both modes
# (they run the same steps, so they should agree) and the peers' rates.
#
# Usage: bench/train_step.sh BUILD_DIR OUT_DIR
#   OUT_DIR/eager/train-step.db and OUT_DIR/cuda_graph/train-step.db (train_log rows),
#   OUT_DIR/train_step_peer.csv, table on stdout.
set -uo pipefail
BUILD="${1:?usage: bench/train_step.sh BUILD_DIR OUT_DIR}"
OUT="${2:?usage: bench/train_step.sh BUILD_DIR OUT_DIR}"
SPEC="$(dirname "$0")/../experiments/train-step-bench.json"
status=0
for mode in eager cuda_graph; do
  mkdir -p "$OUT/$mode"
  "$BUILD/mixlab" sweep "$SPEC" --device cuda --set train.execution=$mode --db "$OUT/$mode/train-step.db" \
    > "$OUT/$mode/sweep.log" 2>&1 || { status=1; tail -n 20 "$OUT/$mode/sweep.log"; }
done
if python3 -c 'import torch' 2>/dev/null; then
  python3 "$(dirname "$0")/peers/train_step_peer.py" "$OUT/train_step_peer.csv" > "$OUT/peer.log" 2>&1 ||
    { status=1; tail -n 20 "$OUT/peer.log"; }
fi
python3 - "$OUT" <<'PY' || status=1
import csv, os, sqlite3, statistics, sys
out = sys.argv[1]
peers = {}  # (peer, point label) -> steps/s
if os.path.exists(f"{out}/train_step_peer.csv"):
    for row in csv.DictReader(open(f"{out}/train_step_peer.csv")):
        peers[(row["peer"], row["point"])] = row["steps_per_s"] or row["error"][:20] or "-"
def steps(mode):
    db = sqlite3.connect(f"{out}/{mode}/train-step.db")
    rows = db.execute("""SELECT p.label, p.config_json, t.step, t.tokens, t.tokens_per_s, t.loss, t.execution
                         FROM train_log t JOIN points p ON p.point_id = t.point_id ORDER BY p.label, t.step""").fetchall()
    by = {}
    for label, config, step, tokens, tps, loss, execution in rows:
        by.setdefault(label, []).append((step, tokens, tps, loss, execution))
    return by
eager, graph = steps("eager"), steps("cuda_graph")
print(f"{'point':72s} {'eager steps/s':>13s} {'graph steps/s':>13s} {'ratio':>6s} {'loss eager':>10s} {'loss graph':>10s} "
      f"{'compile':>9s} {'compile+graph':>13s} graph execution")
for label in sorted(eager):
    def rate(rows):  # median steps/s after the first 10 steps (captures, warm-up)
        per_step = rows[0][1] / rows[0][0]
        return statistics.median(r[2] / per_step for r in rows if r[0] > 10)
    e, g = eager[label], graph.get(label)
    if not g:
        print(f"{label:72s} {rate(e):13.1f} {'-':>13s}"); continue
    compiled, graphed = (peers.get((name, label), "-") for name in ("compile", "compile+graph"))
    print(f"{label:72s} {rate(e):13.1f} {rate(g):13.1f} {rate(g)/rate(e):6.2f} {e[-1][3]:10.4f} {g[-1][3]:10.4f} "
          f"{compiled:>9s} {graphed:>13s} {g[-1][4]}")
PY
exit $status
