"""One FlexAttention sliding-window call, forward and forward+backward, inside a profiler range, for
Nsight Compute (bench/attention_profile.sh: `ncu --profile-from-start off` sees only these launches).

The shape is the op table's swa row of length N and head dim D (`mixlab kernel_bench --list-ops`, as
attention_peers.py times it); the mask is attention_peers.py's band block mask.
The compiled kernels are built and warmed before the range starts.

Usage: python3 flex_profile.py N D      ($MIXLAB_BIN: the mixlab binary; D: the head dim)
"""
import sys

import torch

import attention_peers
import common


def main():
    n, d = int(sys.argv[1]), int(sys.argv[2])
    shapes = [s for s in common.op_table(["swa"]) if s["N"] == n and s["head_dim"] == d]
    if not shapes:
        raise SystemExit(f"flex_profile.py: the op table has no swa row of N = {n}, head dim {d}")
    for shape in shapes:
        make = lambda: torch.randn(1, shape["batch_heads"], n, shape["head_dim"], device="cuda",
                                   dtype=torch.bfloat16, requires_grad=True)
        q, k, v = make(), make(), make()
        dout = torch.randn_like(q)
        (_, run), = attention_peers.flex_runs(shape, q, k, v)
        for _ in range(3):  # compile and warm both directions outside the range
            with torch.no_grad():
                run()
            run().backward(dout)
        torch.cuda.synchronize()
        torch.cuda.profiler.start()
        with torch.no_grad():
            run()
        q.grad = k.grad = v.grad = None
        run().backward(dout)
        torch.cuda.synchronize()
        torch.cuda.profiler.stop()
        print(f"flex_profile.py: swa N {n} d {shape['head_dim']} W {shape['window']} profiled", flush=True)


if __name__ == "__main__":
    main()
