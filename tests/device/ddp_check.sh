#!/usr/bin/env bash
# Data-parallel training on two GPUs of one node (NCCL) against one GPU with the same global
# batch: a ~120M-parameter Transformer (the transformer preset at d_model 768, 16 layers, vocab
# 8192) on MQAR at sequence length 2048, bf16 autocast.  Writes into OUT:
#   one.log, two.log                 the two `mixlab train` logs (two: under torchrun)
#   one.db, two.db, one.csv, two.csv their databases and curves (docs/training.md)
#   ddp_curves.csv                   step,loss_1gpu,loss_2gpu,tokens_per_s_1gpu,tokens_per_s_2gpu
#   summary.txt                      parameters, mean tokens/s of each (steps after the first 10),
#                                    the speed-up, the largest loss difference, PASS/FAIL lines
# Usage: tests/device/ddp_check.sh BUILD OUT   (on nvidia-h200-x2; STEPS=60 by default; needs
# torchrun, i.e. the PyTorch wheel whose LibTorch BUILD was configured against)
# Exit status: non-zero when a run fails or the 2-GPU curve leaves the 1-GPU one by more than
# bf16 noise (|Δloss| > 0.05 at any step); the speed-up target (>= 1.9x) is reported, not enforced.
set -euo pipefail
BUILD=${1:?usage: ddp_check.sh BUILD OUT}
OUT=${2:?usage: ddp_check.sh BUILD OUT}
STEPS=${STEPS:-60}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0   # NVLink multicast stays off on the lent machines
BUILD=$(cd "$BUILD" && pwd)
TORCHRUN=${TORCHRUN:-$(command -v torchrun || echo "python3 -m torch.distributed.run")}

common=(--preset transformer --set model.d_model=768 --set model.n_layers=16 --set model.n_heads=12
  --set model.vocab_size=8192 --set train.data.source=mqar --set train.data.num_kv_pairs=64
  --set train.seq_len=2048 --set train.batch_size=16 --set "train.steps=$STEPS" --set train.lr=3e-4
  --set train.warmup_steps=10 --set train.precision=bfloat16 --set train.eval.examples=64
  --set train.log_every=10 --device cuda)

rm -rf "$OUT/runs1" "$OUT/runs2" "$OUT"/one.* "$OUT"/two.*
echo "ddp_check: 1 GPU, $STEPS steps"
CUDA_VISIBLE_DEVICES=0 "$BUILD/mixlab" train "${common[@]}" --run-root "$OUT/runs1" --db "$OUT/one.db" \
  --curves-csv "$OUT/one.csv" >"$OUT/one.log" 2>&1 || { tail -20 "$OUT/one.log"; exit 1; }
echo "ddp_check: 2 GPUs (torchrun, NCCL), $STEPS steps"
# shellcheck disable=SC2086
CUDA_VISIBLE_DEVICES=0,1 $TORCHRUN --no-python --standalone --nproc-per-node 2 "$BUILD/mixlab" train "${common[@]}" \
  --run-root "$OUT/runs2" --db "$OUT/two.db" --curves-csv "$OUT/two.csv" >"$OUT/two.log" 2>&1 ||
  { tail -40 "$OUT/two.log"; exit 1; }

python3 - "$OUT" <<'EOF'
import csv, sqlite3, sys
out = sys.argv[1]
def curves(name):
    loss, speed = {}, {}
    for row in csv.DictReader(open(f"{out}/{name}.csv")):
        if row["kind"] == "train" and row["name"] == "loss": loss[int(row["step"])] = float(row["value"])
        if row["kind"] == "train" and row["name"] == "tokens_per_s": speed[int(row["step"])] = float(row["value"])
    return loss, speed
l1, s1 = curves("one")
l2, s2 = curves("two")
steps = sorted(l1)
with open(f"{out}/ddp_curves.csv", "w") as f:
    f.write("step,loss_1gpu,loss_2gpu,tokens_per_s_1gpu,tokens_per_s_2gpu\n")
    for s in steps:
        f.write(f"{s},{l1[s]},{l2.get(s, '')},{s1.get(s, '')},{s2.get(s, '')}\n")
late = [s for s in steps if s > 10]
mean = lambda xs: sum(xs) / max(len(xs), 1)
t1, t2 = mean([s1[s] for s in late]), mean([s2[s] for s in late if s in s2])
diff = max(abs(l1[s] - l2[s]) for s in steps if s in l2) if l2 else float("inf")
params = sqlite3.connect(f"{out}/one.db").execute("SELECT parameters FROM points").fetchone()[0]
ok_curve = len(l2) == len(l1) and diff <= 0.05
lines = [f"parameters {params}", f"tokens/s 1 GPU {t1:.0f}", f"tokens/s 2 GPUs {t2:.0f}",
         f"speed-up {t2 / t1:.3f} (target >= 1.9: {'PASS' if t2 >= 1.9 * t1 else 'FAIL'})",
         f"largest |loss_2gpu - loss_1gpu| {diff:.4f} over {len(steps)} steps (bf16 noise <= 0.05: "
         f"{'PASS' if ok_curve else 'FAIL'})",
         f"final loss 1 GPU {l1[steps[-1]]:.4f}, 2 GPUs {l2.get(steps[-1], float('nan')):.4f}"]
open(f"{out}/summary.txt", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(0 if ok_curve else 1)
EOF
