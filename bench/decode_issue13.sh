#!/usr/bin/env bash
# Issue 13's decode target, both sides in one call: mixlab's static decoder (experiments/
# decode-peer-issue13.json: scout-swa-470m, scout-mamba-430m, qwen2-340m, mamba-546m at 2k..32k,
# batch 16, bf16, timed by spans) and the gpt-fast peer of each preset (bench/peers/decode_peer.py,
# torch.compile + one CUDA graph, its fastest attention formulation, `matmul` in session 22), then
# the table (bench/peers/decode_table.py).  Each side has a time limit, so a slow compile costs
# its own rows only; the sweep resumes its database (`MIXLAB_DECODE_DB`) and skips what is done.
#
# Usage: bench/decode_issue13.sh BUILD OUT [WHAT...]
#   WHAT: mixlab | peer:PRESET:LENGTHS (e.g. peer:mamba-546m:2048,8192,32768) | bandwidth | table
#   (bandwidth: only the copy bandwidth of this GPU, OUT/peer_bandwidth.csv, the floor of a table
#   whose peers were not run or were cut off before their first row)
#   default: mixlab peer:mamba-546m:2048,4096,8192,16384,32768 table
#   -> OUT/decode-issue13.db, OUT/peer_PRESET.csv, OUT/decode-issue13.md
# MIXLAB_PEER_ARGS: more arguments of decode_peer.py, e.g. "--compile-mode max-autotune-no-cudagraphs"
# with MIXLAB_PEER_TAG (e.g. _autotune) to write OUT/peer_PRESET_autotune.csv beside the default rows
# MIXLAB_DECODE_PRESETS (e.g. mamba-546m,scout-swa-470m) and MIXLAB_DECODE_LENGTHS (e.g.
# [2048,32768]): mixlab's side on those presets and lengths only (a call short of device time)
# MIXLAB_PDL=0, MIXLAB_SKINNY_WIDE=0, MIXLAB_DECODE_FUSED_NORM=0: one change of the decode step
# undone at a time, the A/B against the default (docs/gpu.md, docs/decode.md), with its own MIXLAB_DECODE_DB
# (a run resumes its database and skips what is done); bench/decode_ab.sh runs such an A/B, A B A B
set -uo pipefail
BUILD="${1:?usage: bench/decode_issue13.sh BUILD OUT [WHAT...]}"
OUT="${2:?usage: bench/decode_issue13.sh BUILD OUT [WHAT...]}"
shift 2
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$OUT"
DB="${MIXLAB_DECODE_DB:-$OUT/decode-issue13.db}"
[[ $# -gt 0 ]] || set -- mixlab peer:mamba-546m:2048,4096,8192,16384,32768 table
status=0
for what in "$@"; do
  echo "== $what"
  case $what in
    mixlab)
      spec="$HERE/../experiments/decode-peer-issue13.json" subset=()
      if [[ -n ${MIXLAB_DECODE_PRESETS:-} ]]; then  # the spec's points of these presets, same name
        python3 - "$spec" "$MIXLAB_DECODE_PRESETS" "$OUT/decode-subset.json" <<'PY' || { status=1; continue; }
import json, re, sys
spec = json.loads(re.sub(r"(?m)^\s*//.*$", "", open(sys.argv[1]).read()))
wanted = sys.argv[2].split(",")
spec["points"] = [p for p in spec["points"] if p["model"]["preset"] in wanted]
missing = set(wanted) - {p["model"]["preset"] for p in spec["points"]}
if missing: sys.exit(f"decode_issue13.sh: MIXLAB_DECODE_PRESETS names {sorted(missing)}, not in {sys.argv[1]}")
json.dump(spec, open(sys.argv[3], "w"), indent=1)
PY
        spec="$OUT/decode-subset.json"
      fi
      [[ -n ${MIXLAB_DECODE_LENGTHS:-} ]] && subset=(--set "measure.seq_lens=$MIXLAB_DECODE_LENGTHS")
      timeout "${MIXLAB_SWEEP_S:-330}" "$BUILD/mixlab" sweep "$spec" "${subset[@]}" \
        --device cuda --db "$DB" >"$OUT/sweep.log" 2>&1 || { status=1; tail -n 8 "$OUT/sweep.log"; } ;;
    peer:*)
      IFS=: read -r _ preset lengths <<<"$what"
      timeout "${MIXLAB_PEER_S:-250}" python3 "$HERE/peers/decode_peer.py" "$OUT/peer_${preset}${MIXLAB_PEER_TAG:-}.csv" \
        --preset "$preset" --batch 16 --lengths "$lengths" --attention matmul ${MIXLAB_PEER_ARGS:-} 2>&1 |
        grep -v -E 'perf_hints|^\s*$' | tail -n 12 || status=1 ;;
    bandwidth)
      presets="${MIXLAB_DECODE_PRESETS:-mamba-546m}"
      python3 "$HERE/peers/decode_peer.py" "$OUT/peer_bandwidth.csv" --preset "${presets%%,*}" --bandwidth-only 2>&1 | tail -n 2 || status=1 ;;
    table)  # the peers' CSVs of this OUT, if any (none: the floor's bandwidth is an earlier call's)
      peers=(); shopt -s nullglob; peers=("$OUT"/peer_*.csv); shopt -u nullglob
      python3 "$HERE/peers/decode_table.py" "$DB" "${peers[@]}" | tee "$OUT/decode-issue13.md" || status=1 ;;
    *) echo "decode_issue13.sh: unknown step '$what' (mixlab, peer:PRESET:LENGTHS, table)"; status=1 ;;
  esac
done
exit $status
