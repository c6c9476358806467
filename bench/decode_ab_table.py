#!/usr/bin/env python3
"""The table of a same-call decode A/B (bench/decode_ab.sh): `mixlab sweep` databases of decode
rows (bench/decode_issue13.sh's `mixlab` step) with an environment variable at its A value and at
its B value, run alternately, as one markdown row per (preset, N) with each side's median ms per
step over its runs and B's change against A.  ms per step = 1000 · batch / generate_tokens_per_s
(the rate a decode row stores: batch · N tokens over the generation's time).

Usage: python3 decode_ab_table.py A1.db [A2.db ...] -- B1.db [B2.db ...] > decode_ab.md
"""
import json
import sqlite3
import statistics
import sys


def step_ms(paths):
    """{(preset, N): [ms per step, one per database that has the row]} over the decode rows."""
    times = {}
    for path in paths:
        rows = sqlite3.connect(f"file:{path}?mode=ro", uri=True).execute(
            "SELECT p.label, m.seq_len, m.batch, m.status, m.extra_json FROM measurements m "
            "JOIN points p USING(point_id) WHERE m.phase = 'decode'").fetchall()
        for label, n, batch, status, extra in rows:
            rate = json.loads(extra or "{}").get("generate_tokens_per_s")
            if status != "ok" or not rate:
                continue
            times.setdefault((label.split(" ")[0], n), []).append(1000.0 * batch / rate)
    return times


def table(a_paths, b_paths):
    a, b = step_ms(a_paths), step_ms(b_paths)
    lines = [f"A: {len(a_paths)} run(s), B: {len(b_paths)} run(s); ms per step, median over runs; "
             "change = (B − A) / A", "",
             "| preset | N | A ms | B ms | change | A runs | B runs |", "|---|---|---|---|---|---|---|"]
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            lines.append(f"| {key[0]} | {key[1]} | only in {'A' if key in a else 'B'} |||||")
            continue
        ma, mb = statistics.median(a[key]), statistics.median(b[key])
        lines.append(f"| {key[0]} | {key[1]} | {ma:.3f} | {mb:.3f} | {100.0 * (mb - ma) / ma:+.1f}% "
                     f"| {', '.join(f'{t:.3f}' for t in a[key])} | {', '.join(f'{t:.3f}' for t in b[key])} |")
    return "\n".join(lines)


def main(argv):
    if "--" not in argv or argv.index("--") == 0 or argv.index("--") == len(argv) - 1:
        sys.exit("usage: decode_ab_table.py A1.db [A2.db ...] -- B1.db [B2.db ...]")
    at = argv.index("--")
    print(table(argv[:at], argv[at + 1:]))


if __name__ == "__main__":
    main(sys.argv[1:])
