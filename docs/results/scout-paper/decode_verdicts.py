#!/usr/bin/env python3
"""The decode table of README.md and the ratios its verdicts quote, from scout-decode.db.

Rows: experiments/paper/scout-decode.json (SCOUT §4.4: random-init released configs, bf16,
batch 16, prompt of one token, N greedy tokens), timed by spans (docs/decode.md); one commit.
tokens/s = extra_json.generate_tokens_per_s; peak = peak_memory_bytes (absolute, as
torch.cuda.max_memory_allocated); state = measured_state_bytes (the decode state after N tokens).

Usage: python3 docs/results/scout-paper/decode_verdicts.py [scout-decode.db]
"""
import json
import os
import sqlite3
import sys

MIB = 1 << 20
COPY_BYTES_PER_S = 4282e9  # device-to-device copy on this H200 (docs/results/decode-static-h200/README.md)
CLASSES = {  # (SCOUT models, baselines) per size class, SCOUT §4.4
    "~400M": (["scout-swa-470m", "scout-mamba-430m"], ["qwen2-340m", "qwen2-alternate-swa-366m", "mamba-546m"]),
    "~1.3B": (["scout-swa-1.57b", "scout-mamba-1.59b"], ["qwen2-1.36b", "mamba-1.3b"]),
}


def load(path):
    rows = sqlite3.connect(path).execute(
        "SELECT p.label, m.seq_len, m.status, m.extra_json, m.peak_memory_bytes, m.measured_state_bytes, "
        "m.git_commit, p.parameters FROM measurements m JOIN points p USING(point_id) WHERE m.phase = 'decode'").fetchall()
    table, commits = {}, set()
    for label, n, status, extra, peak, state, commit, parameters in rows:
        model = label.split(" ")[0]
        extra = json.loads(extra or "{}")
        table[(model, n)] = dict(status=status, rate=extra.get("generate_tokens_per_s"), peak=peak and peak / MIB,
                                 state=state and state / MIB, timing=extra.get("generate_timing", "generate"),
                                 parameters=parameters)
        commits.add(commit)
    return table, commits


def ratios(table, lengths, a, b, key, invert=False):
    out = []
    for n in lengths:
        x, y = table.get((a, n)), table.get((b, n))
        if not x or not y or x["status"] != "ok" or y["status"] != "ok":
            out.append("-")
            continue
        r = y[key] / x[key] if invert else x[key] / y[key]
        out.append(f"{r:.2f}x")
    return " / ".join(out)


def floor_ratio(table, model, lengths, n):
    """Mean step time of the generation of n tokens over its bandwidth floor: every step reads the
    bf16 weights and the state held at its position once, at the measured copy bandwidth.  The
    state at position t is interpolated linearly between the measured lengths, from 0 at t = 0
    for a state that grows (a constant one is constant): a floor that, if anything, is low."""
    row = table[(model, n)]
    measured = [(m, table[(model, m)]["state"]) for m in lengths if (model, m) in table]
    constant = all(abs(s - measured[0][1]) < 1e-6 for _, s in measured)
    states = [(m, s) for m, s in measured if m <= n]
    points = [(0, states[0][1] if constant else 0.0)] + states
    area = sum((b - a) * (sa + sb) / 2 for (a, sa), (b, sb) in zip(points, points[1:]))  # MiB x tokens
    mean_state_bytes = area / n * MIB
    floor_s = (2.0 * row["parameters"] + mean_state_bytes) / COPY_BYTES_PER_S
    step_s = 16.0 / row["rate"]  # batch 16
    return step_s * 1e3, floor_s * 1e3, step_s / floor_s


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "scout-decode.db")
    table, commits = load(path)
    lengths = sorted({n for _, n in table})
    names = [f"{n // 1024}k" for n in lengths]
    print(f"commit(s): {', '.join(sorted(commits))}; timing: {sorted({r['timing'] for r in table.values()})}\n")
    print("| model | " + " | ".join(names) + " |")
    print("|---" * (len(lengths) + 1) + "|")
    for cls, (scouts, bases) in CLASSES.items():
        for model in scouts + bases:
            cells = []
            for n in lengths:
                r = table.get((model, n))
                cells.append("not run" if not r else r["status"] if r["status"] != "ok" else
                             f"{r['rate']:,.0f} / {r['peak']:,.0f} / {r['state']:,.0f}")
            print(f"| {model} | " + " | ".join(cells) + " |")
    print()
    for cls, (scouts, bases) in CLASSES.items():
        print(f"{cls} class, at {' / '.join(names)}:")
        for s in scouts:
            for b in bases:
                print(f"  {s} vs {b}: tokens/s {ratios(table, lengths, s, b, 'rate')}; "
                      f"state saving {ratios(table, lengths, s, b, 'state', invert=True)}; "
                      f"peak saving {ratios(table, lengths, s, b, 'peak', invert=True)}")
        for model in scouts + bases:
            first, last = table.get((model, lengths[0])), table.get((model, lengths[-1]))
            if first and last and first["status"] == last["status"] == "ok":
                print(f"  {model}: tokens/s {last['rate'] / first['rate'] - 1:+.0%} from {names[0]} to {names[-1]}, "
                      f"state x{last['state'] / first['state']:.1f}, peak - state "
                      f"{first['peak'] - first['state']:,.0f} -> {last['peak'] - last['state']:,.0f} MiB")
        print()
    print("Mean ms per step / bandwidth floor (weights + state at each position, read once) / ratio:")
    for cls, (scouts, bases) in CLASSES.items():
        for model in scouts + bases:
            cells = [("%.2f / %.2f / %.1fx" % floor_ratio(table, model, lengths, n)) if (model, n) in table else "-"
                     for n in lengths]
            print(f"| {model} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
