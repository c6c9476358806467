#!/usr/bin/env bash
# Whole-model forward + backward on one GPU, mixlab beside its peers, in one device call:
#   mixlab, each preset as CUDA graphs (measure.execution=auto) and eagerly (=eager);
#   the same models in PyTorch, torch.compile with SDPA / FlexAttention (bench/peers/model_peers.py).
# bf16, d_model 768, 12 heads, the presets' depths, batch 1.  Rows: OUT/model_bench.db (mixlab),
# OUT/model_peers.csv (peers); bench/peers/model_table.py draws the table of docs/PERF.md.
#
# Usage: bench/model_bench.sh BUILD_DIR OUT_DIR [lengths, default 1024,4096,16384,65536]
#   MIXLAB_MODEL_BENCH=mixlab|peers|both (default both): which side to time
#   MIXLAB_MODEL_PRESETS (default transformer,swa,scout-swa,mamba,scout-mamba): the presets, both sides
#   MIXLAB_MAMBA_SCANS: the peers' Mamba scans (model_peers.py --mamba-scans; its default when unset)
set -uo pipefail
BUILD="${1:?usage: bench/model_bench.sh BUILD_DIR OUT_DIR [lengths]}"
OUT="${2:?usage: bench/model_bench.sh BUILD_DIR OUT_DIR [lengths]}"
LENGTHS="${3:-1024,4096,16384,65536}"
mkdir -p "$OUT"
status=0
SIDE=${MIXLAB_MODEL_BENCH:-both}
PRESETS=${MIXLAB_MODEL_PRESETS:-transformer,swa,scout-swa,mamba,scout-mamba}
for preset in ${PRESETS//,/ }; do
  [[ -f "$(dirname "$0")/../experiments/presets/$preset.json" ]] || {
    echo "model_bench.sh: MIXLAB_MODEL_PRESETS names '$preset', which has no experiments/presets/$preset.json" >&2; exit 2; }
done
peer_options=(--presets "$PRESETS")
[[ -n ${MIXLAB_MAMBA_SCANS:-} ]] && peer_options+=(--mamba-scans "$MIXLAB_MAMBA_SCANS")
[[ $SIDE == peers ]] || for preset in ${PRESETS//,/ }; do
  for mode in auto eager; do
    "$BUILD/mixlab" bench --preset "$preset" --set model.d_model=768 --set model.n_heads=12 --seq "$LENGTHS" \
      --phases forward_backward --device cuda --dtype bfloat16 --repeats 10 --set measure.execution=$mode \
      --db "$OUT/model_bench.db" 2>&1 | tail -n 6 || status=1
  done
done
# The peers' lengths below 64k first, every preset, then 64k (one compiled graph per length; the
# longest take minutes): a call cut by its time limit still has every preset's peer up to 16k.
peers() {  # peers LENGTHS CSV
  [[ -n $1 ]] || return 0
  PYTHONUNBUFFERED=1 python3 "$(dirname "$0")/peers/model_peers.py" "$2" --lengths "$1" "${peer_options[@]}" || status=1
}
if [[ $SIDE != mixlab ]]; then
  short=$(tr , '\n' <<<"$LENGTHS" | awk '$1 < 65536' | paste -sd, -)
  long=$(tr , '\n' <<<"$LENGTHS" | awk '$1 >= 65536' | paste -sd, -)
  peers "$short" "$OUT/model_peers.csv"
  if [[ -n $long ]]; then
    peers "$long" "$OUT/model_peers_long.csv"
    if [[ -f $OUT/model_peers.csv ]]; then tail -n +2 "$OUT/model_peers_long.csv" >>"$OUT/model_peers.csv"
    else mv "$OUT/model_peers_long.csv" "$OUT/model_peers.csv"; fi
  fi
fi
exit $status
