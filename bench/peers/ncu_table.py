"""Tables of where one call's GPU time goes, from Nsight Compute's CSV (bench/kernel_breakdown.sh).

Each file holds the kernels of one call (`ncu --csv --metrics gpu__time_duration.sum`), named
<side>_<preset>_<N>.csv.  A kernel's family is read from its name: matrix products (cuBLAS,
CUTLASS, nvjet), attention (flash / fmha / cuDNN / FlexAttention / mixlab's attention kernels),
scan (selective scan), fused Triton kernels (torch.compile's), elementwise, reductions, copies,
other.  Printed: one summary row per file (kernels, GPU ms, ms per family), then the largest
kernels of each file.

    python3 bench/peers/ncu_table.py OUT/*.csv [--top 12]
"""
import argparse
import collections
import csv
import gzip
import os
import re
import sys

UNIT_MS = {"ns": 1e-6, "nsecond": 1e-6, "us": 1e-3, "usecond": 1e-3, "ms": 1.0, "msecond": 1.0,
           "s": 1e3, "second": 1e3}
FAMILIES = [  # (family, pattern on the lower-cased full kernel name, template arguments included), first match wins
    ("attention", r"flash|fmha|attention|attn|cudnn|flex|sdpa|checkpoint|slidingwindow|row_dot_kernel"),
    ("matmul", r"gemm|nvjet|cutlass|xmma|sm90_|sm80_|matmul|cublas"),
    ("scan", r"scan"),
    ("fused", r"^triton_|triton|rope_kernel|swiglu_"),  # torch.compile's Triton kernels, mixlab's fused elementwise kernels
    ("norm", r"gammabeta|layer_norm|layernorm|rms_norm|rmsnorm"),
    ("reduction", r"reduce|softmax|sum_|cross_entropy|logsumexp"),
    ("copy", r"copy|cat_|index|gather|scatter|embedding"),
    ("fill", r"fillfunctor|fill_"),
    ("add", r"functor_add|addfunctor"),
    ("elementwise", r"elementwise|vectorized|unrolled|pointwise"),
]


def short_name(name):
    """The kernel's name without its return type, template arguments and parameters."""
    name = re.sub(r"^void\s+", "", name.strip())
    depth, out = 0, []
    for ch in name:
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out).strip()[:90] or name[:90]


def family(name):
    lowered = name.lower()
    for fam, pattern in FAMILIES:
        if re.search(pattern, lowered):
            return fam
    return "other"


def read_kernels(path):
    """[(kernel name, ms)] of one ncu CSV (lines before the header, e.g. ==PROF==, skipped)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        lines = [line for line in f if line.startswith('"')]
    kernels = []
    for row in csv.DictReader(lines):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        value = float(row["Metric Value"].replace(",", ""))
        kernels.append((row["Kernel Name"], value * UNIT_MS[row["Metric Unit"].strip()]))
    return kernels


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    families = [fam for fam, _ in FAMILIES] + ["other"]
    runs = []
    for path in sorted(args.files, key=lambda p: os.path.basename(p).split("_", 1)[1:] + [os.path.basename(p)]):
        if not os.path.exists(path):
            continue
        kernels = read_kernels(path)
        runs.append((re.sub(r"\.csv(\.gz)?$", "", os.path.basename(path)), kernels))
    if not runs:
        sys.exit("ncu_table.py: no kernels in the files given")
    print("| call | kernels | GPU ms | " + " | ".join(families) + " |")
    print("|---|---|---|" + "---|" * len(families))
    for run, kernels in runs:
        by_family = collections.Counter()
        for name, ms in kernels:
            by_family[family(name)] += ms
        cells = " | ".join(f"{by_family[fam]:.3f}" for fam in families)
        print(f"| {run} | {len(kernels)} | {sum(ms for _, ms in kernels):.3f} | {cells} |")
    for run, kernels in runs:
        total = collections.Counter()
        count = collections.Counter()
        for name, ms in kernels:  # grouped by short name and family (a copy and an add share a short name)
            total[(short_name(name), family(name))] += ms
            count[(short_name(name), family(name))] += 1
        print(f"\n### {run}: the {args.top} largest kernels (ms summed over launches)\n")
        print("| kernel | family | launches | ms |")
        print("|---|---|---|---|")
        for (name, fam), ms in total.most_common(args.top):
            print(f"| `{name}` | {fam} | {count[(name, fam)]} | {ms:.3f} |")


if __name__ == "__main__":
    main()
