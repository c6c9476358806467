#!/usr/bin/env bash
# Where a whole-model forward + backward spends the GPU's time, mixlab beside its torch.compile
# peer (issue 13: a missed target is reported with a measured breakdown of why).  One call of each
# (preset, N) runs alone inside the CUDA profiler's range and Nsight Compute times every kernel of
# it (gpu__time_duration, clocks left alone); bench/peers/ncu_table.py groups the kernels into
# families (matrix products, attention, fused Triton, elementwise, reductions, ...) and lists the
# largest.  The kernels' durations add up to the GPU's busy time of one call: the time a CUDA
# graph replay cannot go below.
#
# mixlab: `mixlab bench` as bench/model_bench.sh runs it (bf16, d_model 768, 12 heads, batch 1,
# CUDA graphs), with MIXLAB_PROFILE_RANGE=1 (harness/device.h, ProfiledRange).  The peer:
# bench/peers/model_peers.py --profile-range (torch.compile, default mode: the same kernels as
# reduce-overhead, which only replays them as a graph).  One process per (side, preset, N), so
# each profile holds one call.
#
# Usage: bench/kernel_breakdown.sh BUILD_DIR OUT_DIR [lengths, default 4096,16384] [presets,
#        default transformer,swa,scout-swa]
#   OUT_DIR/<side>_<preset>_<N>.csv (ncu's rows), OUT_DIR/breakdown.md (the tables).
# MIXLAB_BREAKDOWN_PHASE=decode: one decode step instead (the released presets as they are, bf16,
# batch 16, the step at position 0 of a static state of N tokens, as a CUDA graph replay): where
# the fixed per-step cost of docs/results/decode-static-h200 goes; beside it one replayed step of
# the preset's gpt-fast peer (bench/peers/decode_peer.py; MIXLAB_BREAKDOWN_PEER=0: mixlab only).
# MIXLAB_BREAKDOWN_PHASE=train: one training step instead (mixlab only; the Zoology-sized MQAR
# models of experiments/train-step-bench.json, 2 layers, vocab 8,192, the 20th step of `mixlab
# train`, a CUDA graph replay where the model allows it); PRESETS name mixers (default
# attention,mamba,mamba2) and LENGTHS the settings (64: 4 pairs, batch 512; 256: 16, 256; 512:
# 64, 128), at d_model $MIXLAB_BREAKDOWN_D (default 64): where a tiny step's time goes; for
# attention also its PyTorch peer's step (bench/peers/train_step_peer.py, compile + whole-step graph).
set -uo pipefail
BUILD="${1:?usage: bench/kernel_breakdown.sh BUILD_DIR OUT_DIR [lengths] [presets]}"
OUT="${2:?usage: bench/kernel_breakdown.sh BUILD_DIR OUT_DIR [lengths] [presets]}"
LENGTHS="${3:-4096,16384}"
PRESETS="${4:-transformer,swa,scout-swa}"
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$OUT"
command -v ncu >/dev/null || { echo "kernel_breakdown.sh: ncu (Nsight Compute) is not on the PATH" >&2; exit 2; }
NCU=(ncu --profile-from-start off --clock-control none --metrics gpu__time_duration.sum --csv)
status=0
SCRATCH="$(mktemp -d)"  # the training runs' databases and folders: not results, kept out of OUT
trap 'rm -rf "$SCRATCH"' EXIT
if [[ ${MIXLAB_BREAKDOWN_PHASE:-} == train ]]; then
  [[ $# -ge 4 ]] || PRESETS=attention,mamba,mamba2
  [[ $# -ge 3 ]] || LENGTHS=64,512
  d=${MIXLAB_BREAKDOWN_D:-64}
  for mixer in ${PRESETS//,/ }; do
    for n in ${LENGTHS//,/ }; do
      case $n in 64) pairs=4 batch=512 ;; 128) pairs=8 batch=512 ;; 256) pairs=16 batch=256 ;; *) pairs=64 batch=128 ;; esac
      name="mixlab-train_${mixer}_d${d}_${n}"
      cat >"$OUT/$name.json" <<JSON
{"model": {"name": "$mixer", "vocab_size": 8192, "d_model": $d, "n_heads": 1, "n_layers": 2, "pattern": ["$mixer"]},
 "train": {"data": {"source": "mqar", "num_kv_pairs": $pairs, "power_a": 0.01, "random_non_queries": false, "examples": 4096},
           "seq_len": $n, "batch_size": $batch, "steps": 24, "lr": 1e-3, "weight_decay": 0.1, "grad_clip": 1.0,
           "eval": {"examples": 64}, "progress": false, "checkpoint_every": 1000000000}}
JSON
      MIXLAB_PROFILE_RANGE=1 "${NCU[@]}" --log-file "$OUT/$name.csv" "$BUILD/mixlab" train --config "$OUT/$name.json" \
        --device cuda --db "$SCRATCH/$name.db" --run-root "$SCRATCH/runs" >"$OUT/$name.log" 2>&1 ||
        { status=1; tail -n 5 "$OUT/$name.log"; }
      if [[ $mixer == attention ]]; then  # its peer: the same model in PyTorch, the whole step one graph
        "${NCU[@]}" --log-file "$OUT/peer-train_${mixer}_d${d}_${n}.csv" python3 "$HERE/peers/train_step_peer.py" \
          /dev/null --peers compile+graph --points "$d:$n" --steps 20 --profile-range \
          >"$OUT/peer-train_${mixer}_d${d}_${n}.log" 2>&1 || { status=1; tail -n 5 "$OUT/peer-train_${mixer}_d${d}_${n}.log"; }
      fi
      echo "[train $mixer d=$d N=$n] profiled"
    done
  done
  python3 "$HERE/peers/ncu_table.py" "$OUT"/mixlab-train_*.csv "$OUT"/peer-train_*.csv | tee "$OUT/breakdown-train.md" || status=1
  exit $status
fi
if [[ ${MIXLAB_BREAKDOWN_PHASE:-} == decode ]]; then
  for preset in ${PRESETS//,/ }; do
    for n in ${LENGTHS//,/ }; do
      MIXLAB_PROFILE_RANGE=1 "${NCU[@]}" --log-file "$OUT/mixlab-decode_${preset}_${n}.csv" \
        "$BUILD/mixlab" bench --preset "$preset" --seq "$n" --phases decode --batch 16 --device cuda \
        --dtype bfloat16 --set measure.time_budget_s=60 >"$OUT/mixlab-decode_${preset}_${n}.log" 2>&1 ||
        { status=1; tail -n 5 "$OUT/mixlab-decode_${preset}_${n}.log"; }
      # its peer (bench/peers/decode_peer.py: torch.compile + one CUDA graph), one replayed step;
      # MIXLAB_BREAKDOWN_PEER=0 leaves it out
      if [[ ${MIXLAB_BREAKDOWN_PEER:-1} != 0 ]]; then
        "${NCU[@]}" --log-file "$OUT/peer-decode_${preset}_${n}.csv" python3 "$HERE/peers/decode_peer.py" /dev/null \
          --preset "$preset" --batch 16 --lengths "$n" --attention matmul --steps 8 --profile-range \
          >"$OUT/peer-decode_${preset}_${n}.log" 2>&1 || { status=1; tail -n 5 "$OUT/peer-decode_${preset}_${n}.log"; }
      fi
      echo "[decode $preset N=$n] profiled"
    done
  done
  python3 "$HERE/peers/ncu_table.py" "$OUT"/mixlab-decode_*.csv "$OUT"/peer-decode_*.csv | tee "$OUT/breakdown-decode.md" || status=1
  exit $status
fi
for preset in ${PRESETS//,/ }; do
  for n in ${LENGTHS//,/ }; do
    MIXLAB_PROFILE_RANGE=1 "${NCU[@]}" --log-file "$OUT/mixlab_${preset}_${n}.csv" \
      "$BUILD/mixlab" bench --preset "$preset" --set model.d_model=768 --set model.n_heads=12 --seq "$n" \
      --phases forward_backward --device cuda --dtype bfloat16 --repeats 1 --warmup 2 \
      >"$OUT/mixlab_${preset}_${n}.log" 2>&1 || { status=1; tail -n 5 "$OUT/mixlab_${preset}_${n}.log"; }
    "${NCU[@]}" --log-file "$OUT/peer_${preset}_${n}.csv" \
      python3 "$HERE/peers/model_peers.py" /dev/null --presets "$preset" --lengths "$n" --modes default \
      --profile-range >"$OUT/peer_${preset}_${n}.log" 2>&1 || { status=1; tail -n 5 "$OUT/peer_${preset}_${n}.log"; }
    echo "[$preset N=$n] profiled"
  done
done
python3 "$HERE/peers/ncu_table.py" "$OUT"/mixlab_*.csv "$OUT"/peer_*.csv | tee "$OUT/breakdown.md" || status=1
exit $status
