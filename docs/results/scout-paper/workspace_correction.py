#!/usr/bin/env python3
"""Peak memory of the decode rows without the cuBLAS workspaces earlier captures left behind.

Until commit e2552de every CUDA-graph capture (harness/cuda_graph.cpp) warmed up and captured on
a fresh stream from LibTorch's pool of 32, and cuBLAS keeps one workspace per (handle, stream)
it has run on, allocated from the caching allocator and never freed: 32 MiB on the H200.  The
peak of a decode row is absolute (torch.cuda.max_memory_allocated), so it counted one workspace
per distinct stream any capture of the process had used so far, this row's own captures
included, up to 32.  With one capture stream (the fix) a row carries one.

A decode row of N tokens captures one graph per span 256, 512, ... N (harness/static_decoder.h):
1 + log2(N / 256) captures.  Corrected peak = raw peak - 32 MiB x (min(32, captures so far) - 1).
The order of the rows within each process is known for the device calls below (each
`bench/scout_paper.sh ... decode` step is one fresh `mixlab sweep` process; a length cut by the
call's time still captured its graphs but is not stored, and follows the last row listed).
Rows of 2026-12-01 (commit f098369) are left out: their processes were cut and resumed in ways
the database does not record exactly.

Check: mamba-546m's five rows from two processes (rows 136-139 after qwen2-340m's 16k and 32k,
row 140 first in a fresh process) correct to the same 1,246.9 MiB, as a recurrent model's peak
must be at every length; the raw peaks range from 1,470.9 to 2,238.9 MiB.

Usage: python3 docs/results/scout-paper/workspace_correction.py [scout-paper.db]
"""
import math
import os
import sqlite3
import sys

WORKSPACE_MIB = 32.0  # cuBLAS workspace per (handle, stream) on the H200 under the PyTorch 2.11 wheel
POOL_STREAMS = 32  # LibTorch's streams per pool (round robin)

# Decode rows in the order each process measured them (measurements.rowid).
PROCESSES = {
    "2026-12-02 02:3x, commit 35b5948": [134, 135, 136, 137, 138, 139],
    "2026-12-02 08:2x, commit f30b27f, call 1": [140, 141, 142, 143],
    "2026-12-02 08:3x, commit f30b27f, call 2": [146, 147, 148, 149, 150, 151],
    "2026-12-02 08:4x, commit f30b27f, call 3": [152, 153, 154, 155, 156],
}


def captures(n):
    return 1 + int(math.log2(n // 256))


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "scout-paper.db")
    db = sqlite3.connect(path)
    print("| process | model | N | raw peak MiB | streams | corrected peak MiB | corrected - state MiB |")
    print("|---|---|---|---|---|---|---|")
    for process, rows in PROCESSES.items():
        so_far = 0
        for rowid in rows:
            label, n, peak, state, phase = db.execute(
                "SELECT p.label, m.seq_len, m.peak_memory_bytes, m.measured_state_bytes, m.phase "
                "FROM measurements m JOIN points p USING (point_id) WHERE m.rowid = ?", (rowid,)).fetchone()
            assert phase == "decode", rowid
            so_far += captures(n)
            streams = min(POOL_STREAMS, so_far)
            raw = peak / 2**20
            corrected = raw - WORKSPACE_MIB * (streams - 1)
            print(f"| {process} | {label} | {n} | {raw:,.1f} | {streams} | {corrected:,.1f} | "
                  f"{corrected - state / 2**20:,.1f} |")


if __name__ == "__main__":
    main()
