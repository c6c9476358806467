#!/usr/bin/env bash
# Every command of the command line with --device cuda, over every registry entry: `mixer run`
# (bf16), `bench` (the entry in a 2-layer model, bf16), `train` (the core presets, MQAR) and a
# sweep with measurement and training (experiments/gpu-smoke.json).  Rows land in OUTDIR/*.db with
# the implementation that ran; the exit status counts the commands that failed.
#
# Usage: scripts/gpu_cli.sh BUILD_DIR OUTDIR     (scripts/gpu.sh OUTDIR cli calls it)
set -uo pipefail
BUILD="${1:?usage: scripts/gpu_cli.sh BUILD_DIR OUTDIR}"
OUT="${2:?usage: scripts/gpu_cli.sh BUILD_DIR OUTDIR}"
MIXLAB="$BUILD/mixlab"
failures=0
check() {  # check NAME COMMAND...: run, log, count a failure
  local name=$1; shift
  if "$@" >>"$OUT/cli.log" 2>&1; then echo "ok      $name"; else echo "FAILED  $name (exit $?)"; failures=$((failures + 1)); fi
}

entries=$("$MIXLAB" list | awk '/^[a-z_0-9]+  \[/{print $1}')
python3 -c "import torch; from safetensors.torch import save_file; torch.manual_seed(0); save_file({'x': torch.randn(2, 64, 128)}, '$OUT/x.safetensors')"
for entry in $entries; do
  check "mixer run $entry" "$MIXLAB" mixer run "$entry" --device cuda --dtype bfloat16 --d-model 128 --n-heads 2 \
    --input "$OUT/x.safetensors" --out "$OUT/y_$entry.safetensors"
  check "bench $entry" "$MIXLAB" bench --preset transformer --set "model.pattern=[\"$entry\",\"mlp\"]" \
    --set model.d_model=256 --set model.n_heads=4 --seq 2048 --device cuda --repeats 3 --db "$OUT/bench.db"
done
for preset in transformer swa scout-swa mamba scout-mamba samba; do
  check "train $preset" "$MIXLAB" train --preset "$preset" --device cuda --set train.data.source=mqar \
    --set train.steps=30 --db "$OUT/train.db" --run-root "$OUT/runs"
done
check "sweep gpu-smoke" "$MIXLAB" sweep experiments/gpu-smoke.json --device cuda --db "$OUT/gpu-smoke.db"
rm -rf "$OUT/runs" "$OUT"/y_*.safetensors "$OUT/x.safetensors"
echo "gpu_cli.sh: $failures command(s) failed (log: $OUT/cli.log)"
exit $((failures > 0))
