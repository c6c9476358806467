#!/usr/bin/env bash
# How many workers should share one GPU for Zoology-sized trainings: runs
# tests/device/zoology_mqar.sh on experiments/zoology-workers-bench.json (48 attention points of one
# cost, a fresh database each time) with K workers for SECONDS, for each K, and counts the
# optimiser steps the workers logged (each point's last "train step" / "stop" line: an
# interrupted point counts what it ran, to within one progress interval of 78 steps).
#   Usage: bench/zoology_workers.sh BUILD OUT [SECONDS per K, default 60] [Ks, default 1,2,4,12]
#     MIXLAB_MPS=1 as for zoology_mqar.sh (the workers under NVIDIA's MPS daemon)
#     MIXLAB_DEVICE=cpu to try the script on the CPU
#   OUT/K<k>/ (each run's summary and logs), OUT/workers.md (the table), also on stdout.
set -uo pipefail
BUILD=${1:?usage: bench/zoology_workers.sh BUILD OUT [SECONDS] [Ks]}
OUT=${2:?usage: bench/zoology_workers.sh BUILD OUT [SECONDS] [Ks]}
SECONDS_PER_K=${3:-60}
KS=${4:-1,2,4,12}
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$OUT"
for k in ${KS//,/ }; do
  MIXLAB_SPEC="$HERE/../experiments/zoology-workers-bench.json" MIXLAB_DEADLINE_S=$SECONDS_PER_K MIXLAB_DB= \
    "$HERE/../tests/device/zoology_mqar.sh" "$BUILD" "$OUT/K$k" "$k" >/dev/null 2>&1
  echo "[workers] K = $k: $(grep -m1 '^workers:' "$OUT/K$k/summary.txt" 2>/dev/null || echo 'no summary')"
done
python3 - "$OUT" "$SECONDS_PER_K" ${KS//,/ } <<'PY' | tee "$OUT/workers.md"
import io, re, sys, tarfile
out, seconds, ks = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
point = re.compile(r"^\[\d+/\d+\] .*\([0-9a-f]+\): (.*)")
step = re.compile(r"^\s*(?:train|stop)\s+step (\d+)/\d+")
print(f"Optimiser steps logged by K workers in {seconds:.0f} s (experiments/zoology-workers-bench.json)\n")
print("| workers | points done | optimiser steps | steps/s, all workers | steps/s per worker |")
print("|---|---|---|---|---|")
for k in ks:
    steps, done = 0, 0
    try:
        with tarfile.open(f"{out}/K{k}/logs.tgz") as archive:
            for member in archive.getmembers():
                if not member.name.startswith("worker"):
                    continue
                # A training's progress lines come before its point's line ("done in", or nothing
                # when interrupted): a training is a run of rising step counts.
                latest = 0
                for line in io.TextIOWrapper(archive.extractfile(member), encoding="utf-8", errors="replace"):
                    m = step.match(line)
                    if m:
                        value = int(m.group(1))
                        if value < latest:
                            steps, latest = steps + latest, 0
                        latest = max(latest, value)
                        continue
                    m = point.match(line)
                    if m:
                        done += m.group(1).startswith("done in")
                        steps, latest = steps + latest, 0
                steps += latest
    except (OSError, tarfile.TarError) as error:
        print(f"| {k} | – | – | – | – |  ({error})")
        continue
    rate = steps / seconds
    print(f"| {k} | {done} | {steps} | {rate:.0f} | {rate / int(k):.0f} |")
PY
