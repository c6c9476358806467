"""Shared helpers of the peer benchmarks: the op table, timing, CSV rows.

Rows: impl,op,N,head_dim,batch_heads,fwd_ms,fwdbwd_ms,fwd_flops,fwdbwd_flops
(the same columns as cli/kernel_bench.cpp (`mixlab kernel_bench`)).  The shapes and their FLOP and
byte counts come from mixlab's op table (cli/kernel_ops.h, `mixlab kernel_bench --list-ops`), so
both sides time the same shapes and divide by the same counts: FLOPs count only the (query, key)
pairs a mask keeps, 4*d per pair forward, 3.5x that for forward+backward.
"""
import json
import os
import subprocess
import sys

import torch
from triton.testing import do_bench

HEADER = "impl,op,N,head_dim,batch_heads,fwd_ms,fwdbwd_ms,fwd_flops,fwdbwd_flops"


def op_table(ops, quick=False):
    """The rows of `mixlab kernel_bench --list-ops --ops OPS` (the binary: $MIXLAB_BIN, else
    build-gpu/mixlab at the repository root); $MIXLAB_PEER_OPS (comma-separated) keeps only the ops
    it names, as `kernel_bench --ops` does on the mixlab side."""
    wanted = os.environ.get("MIXLAB_PEER_OPS")
    if wanted:
        ops = [op for op in ops if op in wanted.split(",")]
    if not ops:
        return []
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    binary = os.environ.get("MIXLAB_BIN", os.path.join(root, "build-gpu", "mixlab"))
    command = [binary, "kernel_bench", "--list-ops", "--ops", ",".join(ops)] + (["--quick"] if quick else [])
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def median_ms(fn, grad_to_none=None):
    return do_bench(fn, warmup=25, rep=100, grad_to_none=grad_to_none, return_mode="median")


def timed_or_none(fn, grad_to_none=None):
    """Median ms, or None when the run does not fit in GPU memory."""
    try:
        return median_ms(fn, grad_to_none)
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return None


class Csv:
    def __init__(self, path):
        self.file = open(path, "w")
        self.write(HEADER)

    def write(self, row):
        print(row, flush=True)
        self.file.write(row + "\n")
        self.file.flush()

    def row(self, impl, op, n, hd, bh, fwd, both, fwd_flops):
        fmt = lambda x: "" if x is None else f"{x:.6f}"
        self.write(f"{impl},{op},{n},{hd},{bh},{fmt(fwd)},{fmt(both)},{fwd_flops:.6g},{3.5 * fwd_flops:.6g}")

    def shape_row(self, impl, shape, fwd, both, op=None):
        """A row for one shape of the op table (op: the row's op name when it is not the shape's)."""
        self.row(impl, op or shape["op"], shape["N"], shape["head_dim"], shape["batch_heads"], fwd, both,
                 shape["fwd_flops"])


def out_path(default):
    return sys.argv[1] if len(sys.argv) > 1 else default


def write_row(out, row):
    """Prints a CSV row and appends it to the open file at once: a run cut short keeps its rows."""
    print(row, flush=True)
    out.write(row + "\n")
    out.flush()


def forget_compiled():
    """Drops torch.compile's graphs and the cached GPU memory between two models."""
    torch._dynamo.reset()
    torch.cuda.empty_cache()
