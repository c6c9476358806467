"""The A/B table of bench/patch_ab.sh: kernel_bench CSVs of the tree (A) and of the tree with a
patch (B), timed alternately in one call, as one markdown row per (impl, op, N, head_dim) with
each side's median over its repeats and B's change against A, for the forward, forward+backward
and the backward they imply (fwd+bwd − fwd), and the spread of the runs: per side
(max − min) / median over its runs, the larger side's.  A change smaller than its spread is within
the runs' own noise (session 40: the sm90 window backward's fwd+bwd spread 8.6% between runs of
one tree, its forward under 0.2%).

Usage: python3 patch_ab_table.py A1.csv [A2.csv ...] -- B1.csv [B2.csv ...] > patch_ab.md
"""
import csv
import statistics
import sys


def spread(runs):
    """(max − min) / median of one side's runs (0 for a single run)."""
    middle = statistics.median(runs)
    return (max(runs) - min(runs)) / middle if middle > 0 else 0.0


def medians(paths):
    """{(impl, op, N, head_dim): (median fwd_ms, median fwdbwd_ms, fwd spread, fwdbwd spread)}
    over the files' rows."""
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
    return {k: (statistics.median(f), statistics.median(b), spread(f), spread(b)) for k, (f, b) in times.items()}


def change(a, b):
    return f"{100.0 * (b - a) / a:+.1f}%" if a > 0 and b > 0 else "–"


def table(a_paths, b_paths):
    a, b = medians(a_paths), medians(b_paths)
    lines = [f"A: {len(a_paths)} run(s), B: {len(b_paths)} run(s); ms, median over runs; change = (B − A) / A; "
             "spread = (max − min) / median over a side's runs, the larger side's (a change below it is noise)",
             "",
             "| impl | op | N | head_dim | A fwd | B fwd | fwd change | A fwd+bwd | B fwd+bwd | fwd+bwd change "
             "| bwd change | fwd spread | fwd+bwd spread |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            lines.append(f"| {' | '.join(map(str, key))} | only in {'A' if key in a else 'B'} ||||||||||")
            continue
        (af, ab, a_fs, a_bs), (bf, bb, b_fs, b_bs) = a[key], b[key]
        lines.append(f"| {' | '.join(map(str, key))} | {af:.3f} | {bf:.3f} | {change(af, bf)} "
                     f"| {ab:.3f} | {bb:.3f} | {change(ab, bb)} | {change(ab - af, bb - bf)} "
                     f"| {100.0 * max(a_fs, b_fs):.1f}% | {100.0 * max(a_bs, b_bs):.1f}% |")
    return "\n".join(lines)


def main(argv):
    if "--" not in argv or argv.index("--") == 0 or argv.index("--") == len(argv) - 1:
        sys.exit("usage: patch_ab_table.py A.csv [A.csv ...] -- B.csv [B.csv ...]")
    cut = argv.index("--")
    print(table(argv[:cut], argv[cut + 1:]))


if __name__ == "__main__":
    main(sys.argv[1:])
