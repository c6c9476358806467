#!/usr/bin/env python3
"""The scan kernels' Nsight Compute counters (bench/scan_profile.sh) as one Markdown table.

Usage: ncu_scan_table.py FILE.csv...   (ncu --csv --page raw: a header row, a units row, one row
per profiled launch; the first launch of each file is read)

Rows: the named counters below, then each kernel's five largest stall reasons (cycles a warp waits
per issued instruction); columns: the kernels.
"""
import csv
import os
import sys

NAMED = [
    ("time (ms)", "gpu__time_duration.sum", 1e-6),  # ns
    ("grid (blocks)", "launch__grid_size", 1),
    ("registers per thread", "launch__registers_per_thread", 1),
    ("dynamic shared memory per block (KB)", "launch__shared_mem_per_block_dynamic", 1 / 1024),
    ("blocks per SM allowed by registers", "launch__occupancy_limit_registers", 1),
    ("blocks per SM allowed by shared memory", "launch__occupancy_limit_shared_mem", 1),
    ("theoretical occupancy (% of 64 warps)", "sm__maximum_warps_per_active_cycle_pct", 1),
    ("achieved occupancy (%)", "sm__warps_active.avg.pct_of_peak_sustained_active", 1),
    ("issue slots busy (%)", "sm__issue_active.avg.pct_of_peak_sustained_active", 1),
    ("xu pipe: exp2 etc. (% of peak)", "sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active", 1),
    ("fma pipe (% of peak)", "sm__inst_executed_pipe_fma.avg.pct_of_peak_sustained_active", 1),
    ("alu pipe (% of peak)", "sm__inst_executed_pipe_alu.avg.pct_of_peak_sustained_active", 1),
    ("lsu pipe (% of peak)", "sm__inst_executed_pipe_lsu.avg.pct_of_peak_sustained_active", 1),
    ("DRAM throughput (% of peak)", "dram__throughput.avg.pct_of_peak_sustained_elapsed", 1),
    ("cycles per issued instruction (per warp)", "smsp__average_warp_latency_per_inst_issued.ratio", 1),
    ("warp instructions (millions)", "smsp__inst_executed.sum", 1e-6),
]
STALL = "smsp__average_warps_issue_stalled_"


def number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def first_launch(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 3:
        raise SystemExit(f"{path}: no profiled launch (ncu's log beside it says why)")
    header, units, values = rows[0], rows[1], rows[2]
    got = dict(zip(header, values))
    scale = {"usecond": 1e3, "msecond": 1e6, "second": 1e9, "nsecond": 1}
    for name, unit in zip(header, units):  # times to ns whatever unit ncu printed
        if name == "gpu__time_duration.sum" and unit in scale:
            got[name] = str(number(got[name]) * scale[unit])
        if name == "launch__shared_mem_per_block_dynamic" and unit == "Kbyte":
            got[name] = str(number(got[name]) * 1000)
    return got


def main(paths):
    kernels = []
    for path in paths:
        name = os.path.basename(path)[: -len(".csv")]
        kernels.append((name, first_launch(path)))
    print("| counter | " + " | ".join(k for k, _ in kernels) + " |")
    print("|---|" + "---|" * len(kernels))
    for label, metric, factor in NAMED:
        cells = []
        for _, got in kernels:
            v = number(got.get(metric, ""))
            cells.append("–" if v is None else f"{v * factor:.3g}")
        print(f"| {label} | " + " | ".join(cells) + " |")
    for name, got in kernels:
        stalls = sorted(((number(v) or 0.0, k[len(STALL):].replace("_per_issue_active.ratio", ""))
                         for k, v in got.items() if k.startswith(STALL)), reverse=True)[:5]
        print(f"\n{name}: cycles stalled per issued instruction, largest reasons: "
              + ", ".join(f"{reason} {value:.2f}" for value, reason in stalls))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    main(sys.argv[1:])
