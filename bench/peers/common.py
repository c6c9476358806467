"""Shared helpers of the peer benchmarks: timing, FLOP counts, CSV rows.

Rows: impl,op,N,head_dim,batch_heads,fwd_ms,fwdbwd_ms,fwd_flops,fwdbwd_flops
(the same columns as cli/kernel_bench.cpp (`mixlab kernel_bench`)).  FLOPs count only the (query, key) pairs a
mask keeps: 4*d per pair forward, 3.5x that for forward+backward.
"""
import math
import sys

import torch
from triton.testing import do_bench

TOKENS = 1 << 20          # batch*heads*N of every attention shape
WINDOW = 1024
SEGMENT = 10
LENGTHS = [1024, 4096, 16384, 65536]
HEAD_DIMS = [64, 128]
HEADER = "impl,op,N,head_dim,batch_heads,fwd_ms,fwdbwd_ms,fwd_flops,fwdbwd_flops"


def window_pairs(n, w):
    return n * w - w * (w - 1) / 2 if n >= w else n * (n + 1) / 2


def checkpoint_pairs(n, s):
    # sum_t (1 + floor(t / s))
    m, r = divmod(n, s)
    return n + s * m * (m - 1) / 2 + r * m


def causal_pairs(n):
    return n * (n + 1) / 2


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


def out_path(default):
    return sys.argv[1] if len(sys.argv) > 1 else default
