"""The whole-model table of docs/PERF.md from one run of bench/model_bench.sh.

    python3 bench/peers/model_table.py OUT/model_bench.db OUT/model_peers.csv [OUT/model_peers_long.csv]
Prints, per preset and N, forward + backward ms of mixlab as CUDA graphs, mixlab eager, the
torch.compile peer (the fastest of its modes: default, reduce-overhead), and mixlab's speed-up
over it (peer ms / mixlab ms; > 1: mixlab faster).
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
    for path in sys.argv[2:]:  # model_peers.csv, and model_peers_long.csv where a call was cut before joining them
        with open(path) as f:
            for row in csv.DictReader(f):
                if row["fwd_bwd_ms"] == "fwd_bwd_ms":  # a header repeated where two CSVs were joined
                    continue
                peers[(row["preset"], row["peer"], int(row["N"]))] = float(row["fwd_bwd_ms"]) if row["fwd_bwd_ms"] else None
    fmt = lambda x: "OOM" if x is None else f"{x:.2f}"
    print("| preset | N | mixlab, CUDA graph | mixlab, eager | torch.compile peer (mode) | peer / mixlab graph |")
    print("|---|---|---|---|---|---|")
    for preset, mode, n in sorted({(p, m, n) for p, m, n in mixlab if m == "auto"}, key=lambda k: (k[0], k[2])):
        graph, execution = mixlab[(preset, "auto", n)]
        eager_row = mixlab.get((preset, "eager", n))
        modes = {peer: ms for (p, peer, m), ms in peers.items() if p == preset and m == n and peer.startswith("torch.compile")}
        timed = {peer: ms for peer, ms in modes.items() if ms is not None}
        best = min(timed, key=timed.get) if timed else None
        peer = timed[best] if best else None
        ratio = f"{peer / graph:.2f}x" if peer and graph else "n/a"
        note = "" if execution == "cuda_graph" else f" ({execution})"
        cell = f"{fmt(peer)} ({best.split(':')[1] if ':' in best else 'default'})" if best else ("OOM" if modes else "no peer")
        print(f"| {preset} | {n} | {fmt(graph)}{note} | {fmt(eager_row[0]) if eager_row else 'not run'} | {cell} | {ratio} |")


if __name__ == "__main__":
    main()
