#!/usr/bin/env bash
# Train tiny Qwen2-style, SWA and Mamba models with mixlab (MQAR, a few steps, CPU), export each
# with --names hf --reference-logits, and check with `transformers` that the files load by name
# and give mixlab's logits (bench/peers/hf_logits_check.py).
#   Usage: tests/device/hf_export_check.sh [BUILD_DIR] [OUT_DIR]     (needs python3 with torch,
#   transformers and safetensors; runs on the CPU, a minute or so)
set -euo pipefail
BUILD=${1:-build}
OUT=${2:-$(mktemp -d)}
mkdir -p "$OUT"
tiny="--set model.d_model=64 --set model.n_layers=2 --set model.vocab_size=128 --set train.data.source=mqar
      --set train.seq_len=64 --set train.batch_size=4 --set train.steps=20 --set train.eval.examples=16
      --set train.threads=4 --device cpu --run-root $OUT/runs"
folders=()
for preset in transformer swa mamba; do
  window=""   # a window shorter than the 32 reference tokens, so that it matters
  [[ $preset == swa ]] && window="--set model.mixer_params.swa.window=8"
  # shellcheck disable=SC2086
  "$BUILD/mixlab" train --preset "$preset" $tiny $window >"$OUT/train_$preset.log"
  line=$(grep -m1 'checkpoints in' "$OUT/train_$preset.log")
  id=$(sed -E 's/.*\(([0-9a-f]+)\), checkpoints in.*/\1/' <<<"$line")
  "$BUILD/mixlab" export "$OUT/runs/$id" --names hf --out "$OUT/$preset" --reference-logits
  folders+=("$OUT/$preset")
done
python3 "$(dirname "$0")/../../bench/peers/hf_logits_check.py" "${folders[@]}"
