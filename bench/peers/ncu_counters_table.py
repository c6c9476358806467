#!/usr/bin/env python3
"""Nsight Compute counters of profiled launches as one Markdown table (bench/scan_profile.sh,
bench/attention_profile.sh, bench/scout_profile.sh).

Usage: ncu_counters_table.py [--top K] FILE.csv...
  (ncu --csv --page raw: a header row, a units row, one row per profiled launch)

Columns: the launches, named by file (and by kernel when a file holds several launches, e.g. every
kernel of one Flex call; --top K keeps a file's K longest launches).  Rows: the named counters
below (a counter ncu did not collect prints –), then each launch's five largest stall reasons
(cycles a warp waits per issued instruction).  In a warp-specialised kernel (the sm90 attention
kernels: one producer warpgroup, two consumers) the counters average over every warp, the
producer's included.
"""
import argparse
import csv
import os
import re

NAMED = [
    ("time (ms)", "gpu__time_duration.sum", 1e-6),  # ns
    ("SM clock (GHz)", "sm__cycles_elapsed.avg.per_second", 1e-9),
    ("grid (blocks)", "launch__grid_size", 1),
    ("threads per block", "launch__block_size", 1),
    ("registers per thread", "launch__registers_per_thread", 1),
    ("dynamic shared memory per block (KB)", "launch__shared_mem_per_block_dynamic", 1 / 1024),
    ("blocks per SM allowed by registers", "launch__occupancy_limit_registers", 1),
    ("blocks per SM allowed by shared memory", "launch__occupancy_limit_shared_mem", 1),
    ("theoretical occupancy (% of 64 warps)", "sm__maximum_warps_per_active_cycle_pct", 1),
    ("achieved occupancy (%)", "sm__warps_active.avg.pct_of_peak_sustained_active", 1),
    ("issue slots busy (%)", "sm__issue_active.avg.pct_of_peak_sustained_active", 1),
    ("tensor pipe, wgmma (% of peak cycles)", "sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active", 1),
    ("tensor pipe, mma.sync (% of peak cycles)", "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active", 1),
    ("xu pipe: exp2 etc. (% of peak)", "sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active", 1),
    ("fma pipe (% of peak)", "sm__inst_executed_pipe_fma.avg.pct_of_peak_sustained_active", 1),
    ("alu pipe (% of peak)", "sm__inst_executed_pipe_alu.avg.pct_of_peak_sustained_active", 1),
    ("lsu pipe (% of peak)", "sm__inst_executed_pipe_lsu.avg.pct_of_peak_sustained_active", 1),
    ("shared memory wavefronts (% of peak)", "l1tex__data_pipe_lsu_wavefronts_mem_shared.sum.pct_of_peak_sustained_elapsed", 1),
    ("L1 / shared throughput (% of peak)", "l1tex__throughput.avg.pct_of_peak_sustained_active", 1),
    ("L2 throughput (% of peak)", "lts__throughput.avg.pct_of_peak_sustained_elapsed", 1),
    ("L2 bytes (GB)", "lts__t_bytes.sum", 1e-9),
    # 32-byte sectors: reductions are the backwards' dQ (cp.reduce.async.bulk add.f32)
    ("L2 reductions (GB)", "lts__t_sectors_op_red.sum", 32e-9),
    ("L2 reads (GB)", "lts__t_sectors_op_read.sum", 32e-9),
    ("L2 writes (GB)", "lts__t_sectors_op_write.sum", 32e-9),
    ("DRAM throughput (% of peak)", "dram__throughput.avg.pct_of_peak_sustained_elapsed", 1),
    ("DRAM bytes read (GB)", "dram__bytes_read.sum", 1e-9),
    ("DRAM bytes written (GB)", "dram__bytes_write.sum", 1e-9),
    ("cycles per issued instruction (per warp)", "smsp__average_warp_latency_per_inst_issued.ratio", 1),
    ("warp instructions (millions)", "smsp__inst_executed.sum", 1e-6),
]
STALL = "smsp__average_warps_issue_stalled_"
# ncu prints a counter in the unit it picks; these bring it to the unit NAMED's factor expects.
TO_BASE = {"nsecond": 1, "usecond": 1e3, "msecond": 1e6, "second": 1e9,
           "byte": 1, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9, "Tbyte": 1e12,
           "hz": 1, "Khz": 1e3, "Mhz": 1e6, "Ghz": 1e9, "cycle/second": 1, "cycle/nsecond": 1e9,
           "cycle/usecond": 1e6, "sector": 1, "Ksector": 1e3, "Msector": 1e6, "Gsector": 1e9}


def number(text):
    try:
        return float(text.replace(",", ""))
    except (ValueError, AttributeError):
        return None


def launches(path):
    """Each profiled launch of an ncu raw CSV as {counter: value in base units}."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 3:
        raise SystemExit(f"{path}: no profiled launch (ncu's log beside it says why)")
    header, units = rows[0], rows[1]
    result = []
    for values in rows[2:]:
        got = {}
        for name, unit, value in zip(header, units, values):
            v = number(value)
            got[name] = value if v is None else v * TO_BASE.get(unit, 1)
        result.append(got)
    return result


def short_kernel_name(got):
    """The kernel's name without namespaces, arguments or return type: `f<64>(int, ...)` -> `f<64>`."""
    name = str(got.get("Kernel Name", "?")).replace("(anonymous namespace)::", "")
    name = re.sub(r"\(.*$", "", name)  # the arguments
    head, bracket, args = name.partition("<")
    return (head.split("::")[-1].split(" ")[-1] + bracket + args)[:48]


def columns(paths, top):
    cols = []
    for path in paths:
        name = os.path.basename(path)[: -len(".csv")]
        found = launches(path)
        if len(found) == 1:
            cols.append((name, found[0]))
            continue
        time = lambda g: g.get("gpu__time_duration.sum") if isinstance(g.get("gpu__time_duration.sum"), float) else 0.0
        found.sort(key=time, reverse=True)  # longest first
        for got in found[: top or len(found)]:
            cols.append((f"{name}: {short_kernel_name(got)}", got))
    return cols


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top", type=int, default=0, help="keep a file's K longest launches (0: all)")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    cols = columns(args.files, args.top)
    print("| counter | " + " | ".join(k for k, _ in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for label, metric, factor in NAMED:
        cells = []
        for _, got in cols:
            v = got.get(metric)
            cells.append(f"{v * factor:.3g}" if isinstance(v, float) else "–")
        print(f"| {label} | " + " | ".join(cells) + " |")
    for name, got in cols:
        stalls = sorted(((v, k[len(STALL):].replace("_per_issue_active.ratio", ""))
                         for k, v in got.items() if k.startswith(STALL) and isinstance(v, float)), reverse=True)[:5]
        print(f"\n{name}: cycles stalled per issued instruction, largest reasons: "
              + ", ".join(f"{reason} {value:.2f}" for value, reason in stalls))


if __name__ == "__main__":
    main()
