"""The A/B table of bench/patch_ab.sh: kernel_bench CSVs of the tree (A) and of the tree with a
patch (B), timed alternately in one call, as one markdown row per (impl, op, N, head_dim) with
each side's median over its repeats and B's change against A, for the forward, forward+backward
and the backward they imply (fwd+bwd − fwd).

Usage: python3 patch_ab_table.py A1.csv [A2.csv ...] -- B1.csv [B2.csv ...] > patch_ab.md
"""
import csv
import statistics
import sys


def medians(paths):
    """{(impl, op, N, head_dim): (median fwd_ms, median fwdbwd_ms)} over the files' rows."""
    times = {}
    for path in paths:
        with open(path) as f:
            for row in csv.DictReader(f):
                if row["op"] == "matmul_peak":
                    continue
                key = (row["impl"], row["op"], int(row["N"]), int(row["head_dim"]))
                fwd, both = times.setdefault(key, ([], []))
                fwd.append(float(row["fwd_ms"]))
                both.append(float(row["fwdbwd_ms"]))
    return {k: (statistics.median(f), statistics.median(b)) for k, (f, b) in times.items()}


def change(a, b):
    return f"{100.0 * (b - a) / a:+.1f}%" if a > 0 and b > 0 else "–"


def table(a_paths, b_paths):
    a, b = medians(a_paths), medians(b_paths)
    lines = [f"A: {len(a_paths)} run(s), B: {len(b_paths)} run(s); ms, median over runs; change = (B − A) / A",
             "",
             "| impl | op | N | head_dim | A fwd | B fwd | fwd change | A fwd+bwd | B fwd+bwd | fwd+bwd change "
             "| bwd change |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            lines.append(f"| {' | '.join(map(str, key))} | only in {'A' if key in a else 'B'} ||||||||")
            continue
        (af, ab), (bf, bb) = a[key], b[key]
        lines.append(f"| {' | '.join(map(str, key))} | {af:.3f} | {bf:.3f} | {change(af, bf)} "
                     f"| {ab:.3f} | {bb:.3f} | {change(ab, bb)} | {change(ab - af, bb - bf)} |")
    return "\n".join(lines)


def main(argv):
    if "--" not in argv or argv.index("--") == 0 or argv.index("--") == len(argv) - 1:
        sys.exit("usage: patch_ab_table.py A.csv [A.csv ...] -- B.csv [B.csv ...]")
    cut = argv.index("--")
    print(table(argv[:cut], argv[cut + 1:]))


if __name__ == "__main__":
    main(sys.argv[1:])
