#!/usr/bin/env bash
# Issue 13's decode target, both sides in one call: mixlab's static decoder (experiments/
# decode-peer-issue13.json: scout-swa-470m, scout-mamba-430m, qwen2-340m, mamba-546m at 2k..32k,
# batch 16, bf16, timed by spans) and the gpt-fast peer of each preset (bench/peers/decode_peer.py,
# torch.compile + one CUDA graph, its fastest attention formulation, `matmul` in session 22), then
# the table (bench/peers/decode_table.py).  Each side has a time limit, so a slow compile costs
# its own rows only; the sweep resumes its database (`MIXLAB_DECODE_DB`) and skips what is done.
#
# Usage: bench/decode_issue13.sh BUILD OUT [WHAT...]
#   WHAT: mixlab | peer:PRESET:LENGTHS (e.g. peer:mamba-546m:2048,8192,32768) | table
#   default: mixlab peer:mamba-546m:2048,4096,8192,16384,32768 table
#   -> OUT/decode-issue13.db, OUT/peer_PRESET.csv, OUT/decode-issue13.md
# MIXLAB_PEER_ARGS: more arguments of decode_peer.py, e.g. "--compile-mode max-autotune-no-cudagraphs"
# with MIXLAB_PEER_TAG (e.g. _autotune) to write OUT/peer_PRESET_autotune.csv beside the default rows
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
      timeout "${MIXLAB_SWEEP_S:-330}" "$BUILD/mixlab" sweep "$HERE/../experiments/decode-peer-issue13.json" \
        --device cuda --db "$DB" >"$OUT/sweep.log" 2>&1 || { status=1; tail -n 8 "$OUT/sweep.log"; } ;;
    peer:*)
      IFS=: read -r _ preset lengths <<<"$what"
      timeout "${MIXLAB_PEER_S:-250}" python3 "$HERE/peers/decode_peer.py" "$OUT/peer_${preset}${MIXLAB_PEER_TAG:-}.csv" \
        --preset "$preset" --batch 16 --lengths "$lengths" --attention matmul ${MIXLAB_PEER_ARGS:-} 2>&1 |
        grep -v -E 'perf_hints|^\s*$' | tail -n 12 || status=1 ;;
    table)
      python3 "$HERE/peers/decode_table.py" "$DB" "$OUT"/peer_*.csv | tee "$OUT/decode-issue13.md" || status=1 ;;
    *) echo "decode_issue13.sh: unknown step '$what' (mixlab, peer:PRESET:LENGTHS, table)"; status=1 ;;
  esac
done
exit $status
