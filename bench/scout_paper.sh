#!/usr/bin/env bash
# Issue 18: the SCOUT paper's efficiency experiments (arXiv 2509.00935, §4.4 decode, §4.5 prefill)
# on one GPU, in chunks that resume across device calls, with the authors' method beside mixlab's.
#
# Usage: bench/scout_paper.sh BUILD OUT SECONDS [decode|prefill|hf-decode|hf-prefill ...]
#   BUILD    a CUDA build of mixlab (scripts/gpu.sh builds one)
#   OUT      a folder that persists between calls: OUT/scout-paper.db collects both sweeps (points
#            already done are skipped, so the next call continues where this one stopped)
#   SECONDS  the wall time this call may spend, split evenly over the steps asked for
#   steps    default: decode prefill hf-decode hf-prefill
# On a device machine that receives a copy of your tree per call, copy the database it returns
# back into OUT before the next call: a carried OUT replaces the machine's copy.
# Each step writes as it goes (the database, the CSVs), so a step cut by its time loses only the
# point in progress.  MIXLAB_GIT_COMMIT, when set, names the commit on every row.
# MIXLAB_DECODE_TIMING=spans: the decode sweep runs with measure.decode_timing=spans
# (docs/decode.md, "Timing by spans"; other points, other ids: use another OUT folder).
# MIXLAB_HF_PRESETS, MIXLAB_HF_LENGTHS, MIXLAB_HF_TIMINGS narrow the HF peers' rows (defaults: the
# five HF baselines, 2k..32k (prefill: 2k..16k), cold and warm) when a call cannot hold them all.
set -uo pipefail
BUILD="${1:?usage: bench/scout_paper.sh BUILD OUT SECONDS [steps]}"
OUT="$(mkdir -p "${2:?OUT}" && cd "$2" && pwd)"
SECONDS_TOTAL="${3:?SECONDS}"
shift 3
STEPS=("$@")
[[ ${#STEPS[@]} -eq 0 ]] && STEPS=(decode prefill hf-decode hf-prefill)
SHARE=$(( SECONDS_TOTAL / ${#STEPS[@]} ))
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
HF_PRESETS="${MIXLAB_HF_PRESETS:-qwen2-340m,qwen2-alternate-swa-366m,mamba-546m,qwen2-1.36b,mamba-1.3b}"
HF_TIMINGS="${MIXLAB_HF_TIMINGS:-cold,warm}"
for step in "${STEPS[@]}"; do
  start=$(date +%s)
  case "$step" in
    decode | prefill)
      timing=(); [[ $step == decode && -n ${MIXLAB_DECODE_TIMING:-} ]] && timing=(--set "measure.decode_timing=$MIXLAB_DECODE_TIMING")
      timeout -k 20 "$SHARE" "$BUILD/mixlab" sweep "experiments/paper/scout-$step.json" --device cuda \
        --db "$OUT/scout-paper.db" "${timing[@]}" >>"$OUT/$step.log" 2>&1 ;;
    hf-decode)
      PYTHONUNBUFFERED=1 timeout -k 10 "$SHARE" python3 bench/peers/hf_generate.py "$OUT/hf_decode.csv" \
        --presets "$HF_PRESETS" --phase decode --batch 16 --timings "$HF_TIMINGS" \
        --lengths "${MIXLAB_HF_LENGTHS:-2048,4096,8192,16384,32768}" >>"$OUT/$step.log" 2>&1 ;;
    hf-prefill)
      PYTHONUNBUFFERED=1 timeout -k 10 "$SHARE" python3 bench/peers/hf_generate.py "$OUT/hf_prefill.csv" \
        --presets "$HF_PRESETS" --phase prefill --batch 1,2,4 \
        --lengths "${MIXLAB_HF_LENGTHS:-2048,4096,8192,16384}" >>"$OUT/$step.log" 2>&1 ;;
    *) echo "scout_paper.sh: unknown step '$step' (decode, prefill, hf-decode, hf-prefill)" >&2; exit 2 ;;
  esac
  echo "[$step] exit $? after $(( $(date +%s) - start )) s" | tee -a "$OUT/timeline.txt"
done
