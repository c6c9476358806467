#!/usr/bin/env bash
# Data-parallel throughput on the GPUs of one node: `mixlab train` of a ~120M-parameter Transformer
# (the transformer preset at d_model 768, 16 layers, vocab 8192; MQAR at sequence length 2048,
# bf16 autocast) on 1 GPU and on 2 GPUs (torchrun, NCCL), at the same per-GPU batch (weak
# scaling: the usual data-parallel figure) and at the same global batch (strong scaling).
#   Usage: bench/ddp_scaling.sh BUILD OUT   (on nvidia-h200-x2; STEPS=40, BATCHES="8 16" per GPU)
# OUT/scaling.csv: gpus,per_gpu_batch,global_batch,tokens_per_s,step_ms (mean over the steps after
# the 10th; tokens/s counts the global batch); OUT/summary.txt: the speed-ups; OUT/*.log the runs;
# OUT/nccl.log NCCL's own report of its transport for the first 2-GPU run.
set -euo pipefail
BUILD=$(cd "${1:?usage: ddp_scaling.sh BUILD OUT}" && pwd)
OUT=${2:?usage: ddp_scaling.sh BUILD OUT}
STEPS=${STEPS:-40}
BATCHES=${BATCHES:-8 16}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0   # NVLink multicast stays off on the lent machines
TORCHRUN=${TORCHRUN:-$(command -v torchrun || echo "python3 -m torch.distributed.run")}
common=(--preset transformer --set model.d_model=768 --set model.n_layers=16 --set model.n_heads=12
  --set model.vocab_size=8192 --set train.data.source=mqar --set train.data.num_kv_pairs=64
  --set train.seq_len=2048 --set "train.steps=$STEPS" --set train.lr=3e-4 --set train.warmup_steps=10
  --set train.precision=bfloat16 --set train.eval.examples=64 --set train.log_every=10 --device cuda)

run() {  # run GPUS GLOBAL_BATCH
  local gpus=$1 batch=$2 name="g$1-b$2"
  rm -rf "$OUT/runs-$name"
  if [[ $gpus == 1 ]]; then
    CUDA_VISIBLE_DEVICES=0 "$BUILD/mixlab" train "${common[@]}" --set "train.batch_size=$batch" \
      --run-root "$OUT/runs-$name" --db "$OUT/$name.db" --curves-csv "$OUT/$name.csv" >"$OUT/$name.log" 2>&1
  else
    local debug=(); [[ -f "$OUT/nccl.log" ]] || debug=(env NCCL_DEBUG=INFO NCCL_DEBUG_FILE="$OUT/nccl.log")
    # shellcheck disable=SC2086
    CUDA_VISIBLE_DEVICES=0,1 "${debug[@]}" $TORCHRUN --no-python --standalone --nproc-per-node "$gpus" \
      "$BUILD/mixlab" train "${common[@]}" --set "train.batch_size=$batch" \
      --run-root "$OUT/runs-$name" --db "$OUT/$name.db" --curves-csv "$OUT/$name.csv" >"$OUT/$name.log" 2>&1
  fi
  rm -rf "$OUT/runs-$name"
}
for b in $BATCHES; do
  run 1 "$b" || { tail -20 "$OUT/g1-b$b.log"; exit 1; }
  run 2 $(( 2 * b )) || { tail -30 "$OUT/g2-b$(( 2 * b )).log"; exit 1; }
done

python3 - "$OUT" $BATCHES <<'PY'
import csv, glob, os, sys
out, batches = sys.argv[1], [int(b) for b in sys.argv[2:]]
speed, loss = {}, {}
for path in glob.glob(f"{out}/g*-b*.csv"):
    gpus, batch = os.path.basename(path)[1:-4].split("-b")
    rows = [r for r in csv.DictReader(open(path)) if r["kind"] == "train"]
    tps = [float(r["value"]) for r in rows if r["name"] == "tokens_per_s" and int(r["step"]) > 10]
    speed[(int(gpus), int(batch))] = sum(tps) / len(tps)
    loss[(int(gpus), int(batch))] = {int(r["step"]): float(r["value"]) for r in rows if r["name"] == "loss"}
with open(f"{out}/scaling.csv", "w") as f:
    f.write("gpus,per_gpu_batch,global_batch,tokens_per_s,step_ms\n")
    for (gpus, batch), tps in sorted(speed.items()):
        f.write(f"{gpus},{batch // gpus},{batch},{tps:.0f},{1000 * batch * 2048 / tps:.2f}\n")
lines = []
for b in batches:
    one, two = speed.get((1, b)), speed.get((2, 2 * b))
    if one and two:
        lines.append(f"per-GPU batch {b} x 2048: 1 GPU {one:.0f} tok/s, 2 GPUs {two:.0f} tok/s, "
                     f"speed-up {two / one:.3f} (target >= 1.9: {'PASS' if two >= 1.9 * one else 'FAIL'})")
    strong = speed.get((2, b))
    if one and strong:
        lines.append(f"global batch {b} x 2048 (strong scaling): 1 GPU {one:.0f}, 2 GPUs {strong:.0f}, speed-up {strong / one:.3f}")
        l1, l2 = loss[(1, b)], loss[(2, b)]
        diff = max(abs(l1[s] - l2[s]) for s in l1 if s in l2)
        lines.append(f"  same global batch: largest |loss_2gpu - loss_1gpu| {diff:.4f} over {len(l1)} steps "
                     f"(bf16 noise <= 0.05: {'PASS' if diff <= 0.05 and len(l2) == len(l1) else 'FAIL'})")
open(f"{out}/summary.txt", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
