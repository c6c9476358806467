#!/usr/bin/env python3
"""Issue 13's decode table: mixlab's mean step (a `mixlab sweep` database of decode rows timed by
spans) beside the gpt-fast peer (bench/peers/decode_peer.py CSVs), both against the bandwidth floor
at the copy bandwidth the peer measured in the same call.

    python3 bench/peers/decode_table.py decode-issue13.db peer_*.csv

Columns per (preset, N): mixlab ms per step; mixlab's floor (bf16 weights + the state at each
position, read once: docs/results/scout-paper/decode_verdicts.py's floor_ratio) and the ratio;
the fastest peer formulation's ms, its own floor (weights + its whole state, which its step reads
at every position) and peer / mixlab (above 1: mixlab is faster).
"""
import csv
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "docs", "results", "scout-paper"))
import decode_verdicts  # noqa: E402  (the floor of a mixlab row, one definition)


def load_peers(paths):
    """{(preset, N): fastest row} over every CSV, and the copy bandwidths (bytes/s) they measured."""
    best, bandwidths = {}, []
    for path in paths:
        for row in csv.DictReader(open(path)):
            key = (row["preset"], int(row["N"]))
            bandwidths.append(float(row["bandwidth_gb_s"]) * 1e9)
            if not row["ms_per_step"]:  # the copy-bandwidth row: no step timed
                continue
            if key not in best or float(row["ms_per_step"]) < float(best[key]["ms_per_step"]):
                best[key] = row
    return best, bandwidths


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    if not os.path.isfile(sys.argv[1]):
        raise SystemExit(f"decode_table.py: no database at {sys.argv[1]} (the `mixlab` step of "
                         f"bench/decode_issue13.sh writes it; MIXLAB_DECODE_DB names another)")
    table, commits = decode_verdicts.load(sys.argv[1])
    peers, bandwidths = load_peers(sys.argv[2:])
    if bandwidths:  # the floor at the bandwidth measured in this call, not the constant of an earlier one
        decode_verdicts.COPY_BYTES_PER_S = statistics.median(bandwidths)
        if max(bandwidths) > 1.02 * min(bandwidths):  # CSVs from several calls (or machines) mixed
            print(f"decode_table.py: the CSVs' copy bandwidths range {min(bandwidths) / 1e9:,.0f}-"
                  f"{max(bandwidths) / 1e9:,.0f} GB/s, more than one call's spread; the floor takes their "
                  f"median, and a ratio to a peer timed in another call is not a same-call comparison",
                  file=sys.stderr)
    else:
        print(f"decode_table.py: no peer CSV with this call's copy bandwidth (decode_issue13.sh's `bandwidth` "
              f"step writes one); the floor takes {decode_verdicts.COPY_BYTES_PER_S / 1e9:,.0f} GB/s, "
              f"an earlier call's", file=sys.stderr)
    print(f"mixlab commit(s): {', '.join(sorted(c or '?' for c in commits))}; "
          f"copy bandwidth {decode_verdicts.COPY_BYTES_PER_S / 1e9:,.0f} GB/s\n")
    print("| preset | N | mixlab ms | floor ms | mixlab / floor | peer ms | peer's floor ms | peer formulation | peer / mixlab |")
    print("|---|---|---|---|---|---|---|---|---|")
    models = sorted({m for m, _ in table} | {p for p, _ in peers})
    for model in models:
        lengths = sorted({n for m, n in table if m == model and table[(m, n)]["status"] == "ok"})
        for n in sorted(set(lengths) | {n for p, n in peers if p == model}):
            mine = decode_verdicts.floor_ratio(table, model, lengths, n) if n in lengths else None
            peer = peers.get((model, n))
            cells = [f"{mine[0]:.3f}", f"{mine[1]:.3f}", f"{mine[2]:.2f}x"] if mine else ["-", "-", "-"]
            if peer:
                ms = float(peer["ms_per_step"])
                cells += [f"{ms:.3f}", f"{float(peer['floor_ms']):.3f}", peer["peer"].split("+", 1)[1],
                          f"**{ms / mine[0]:.2f}x**" if mine else "-"]
            else:
                cells += ["-"] * 4
            print(f"| {model} | {n:,} | " + " | ".join(cells) + " |")
    single = [m for m in models if len({n for mm, n in table if mm == m and table[(mm, n)]["status"] == "ok"}) == 1]
    if single:  # decode_verdicts.floor_ratio cannot tell a growing state from a constant one
        print(f"\nOne length measured for {', '.join(single)}: the state is taken as constant over the "
              "generation, so a growing state's floor is too high; time several lengths for its floor.")


if __name__ == "__main__":
    main()
