"""The whole-model table of docs/PERF.md from one run of bench/model_bench.sh.

    python3 bench/peers/model_table.py OUT/model_bench.db OUT/model_peers.csv
Prints, per preset and N, forward + backward ms of mixlab as CUDA graphs, mixlab eager, the
torch.compile peer, and mixlab's speed-up over the peer (peer ms / mixlab ms; > 1: mixlab faster).
"""
import csv
import sqlite3
import sys


def mixlab_rows(path):
    """{(preset, execution, N): median ms} of the forward_backward rows."""
    rows = {}
    db = sqlite3.connect(path)
    query = """SELECT p.label, m.execution, m.seq_len, m.median_ms, m.status, p.config_json
               FROM measurements m JOIN points p USING (point_id) WHERE m.phase = 'forward_backward'"""
    import json
    for label, execution, n, ms, status, config in db.execute(query):
        preset = json.loads(config)["model"].get("name", label)
        mode = json.loads(config)["measure"].get("execution", "auto")
        rows[(preset, mode, n)] = (ms if status == "ok" else None, execution)
    return rows


def main():
    mixlab = mixlab_rows(sys.argv[1])
    peers = {}
    with open(sys.argv[2]) as f:
        for row in csv.DictReader(f):
            peers[(row["preset"], row["peer"], int(row["N"]))] = float(row["fwd_bwd_ms"]) if row["fwd_bwd_ms"] else None
    fmt = lambda x: "OOM" if x is None else f"{x:.2f}"
    print("| preset | N | mixlab, CUDA graph | mixlab, eager | torch.compile peer | peer / mixlab graph |")
    print("|---|---|---|---|---|---|")
    for preset, mode, n in sorted({(p, m, n) for p, m, n in mixlab if m == "auto"}, key=lambda k: (k[0], k[2])):
        graph, execution = mixlab[(preset, "auto", n)]
        eager = mixlab.get((preset, "eager", n), (None, ""))[0]
        peer = peers.get((preset, "torch.compile", n))
        ratio = f"{peer / graph:.2f}x" if peer and graph else "n/a"
        note = "" if execution == "cuda_graph" else f" ({execution})"
        print(f"| {preset} | {n} | {fmt(graph)}{note} | {fmt(eager)} | {fmt(peer) if (preset, 'torch.compile', n) in peers else 'no peer'} | {ratio} |")


if __name__ == "__main__":
    main()
