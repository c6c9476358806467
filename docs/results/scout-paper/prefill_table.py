"""The prefill table of README.md (§4.5): ms for a prompt of N tokens + 10 new tokens, with the
peak memory, one row per (model, batch), from a database of `experiments/paper/scout-prefill.json`.
    python3 docs/results/scout-paper/prefill_table.py [DB]   (default: scout-paper.db beside this)
"""
import json
import os
import sqlite3
import sys

ORDER = ["scout-swa-470m", "scout-mamba-430m", "qwen2-340m", "qwen2-alternate-swa-366m", "mamba-546m",
         "scout-swa-1.57b", "scout-mamba-1.59b", "qwen2-1.36b", "mamba-1.3b"]
LENGTHS = [2048, 4096, 8192, 16384]


def rows(db):
    con = sqlite3.connect(db)
    query = """select p.config_json, m.batch, m.seq_len, m.status, m.median_ms, m.peak_memory_bytes,
                      m.git_commit from measurements m join points p on p.point_id = m.point_id
               where m.phase = 'prefill'"""
    table = {}
    for config, batch, n, status, ms, peak, commit in con.execute(query):
        preset = json.loads(config)["model"]["name"]
        cell = f"{ms:,.1f} ({peak / 2**20:,.0f})" if status == "ok" else status
        table.setdefault((preset, batch), {"commit": set()})[n] = cell
        table[(preset, batch)]["commit"].add(commit or "?")
    return table


def main():
    db = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "scout-paper.db")
    table = rows(db)
    print("| model | batch | 2k | 4k | 8k | 16k | commit |")
    print("|---|---|---|---|---|---|---|")
    for preset in ORDER + sorted({p for p, _ in table} - set(ORDER)):
        for batch in (1, 2, 4):
            row = table.get((preset, batch))
            if row is None:
                continue
            cells = [row.get(n, "not run") for n in LENGTHS]
            print(f"| {preset} | {batch} | " + " | ".join(cells) + f" | {', '.join(sorted(row['commit']))} |")


if __name__ == "__main__":
    main()
