"""Selective-scan peers and ceilings, on the shapes of mixlab's op table (cli/kernel_ops.h, read with
`mixlab kernel_bench --list-ops`: scan = batch 8, E = 2048; scan_narrow = batch 1, E = 1536; n = 16,
bf16 activations):

- eager:   a selective_scan_ref-style scan (arXiv 2312.00752, §3.2), written here: float32, a Python loop
           over time with each step vectorised over [batch, E, n], autograd for the backward.
           Run up to N = 4096 (its time is linear in N; longer runs only cost device time).
- mamba_ssm: the reference CUDA scan of Mamba (github.com/state-spaces/mamba, csrc/selective_scan),
           bf16, the same fused D skip, SiLU(z) gate and Δ bias (bench/peers/mamba_ssm_scan.py), when
           its library was built and carried (bench/peers/mamba_ssm/build.sh); checked against eager
           on a small input first; every N.
- floor:   the bandwidth floor, each input read once and each output written once (the op table's
           fwd_bytes and fwdbwd_bytes), over the measured device-to-device copy bandwidth:
           forward  reads u, delta, z, B, C and writes out;
           backward reads u, delta, z, B, C, dout and writes du, ddelta, dz, dB, dC.
- ceilings: measured copy bandwidth (bytes read + written) and bf16 matmul rate.

Usage: python3 scan_peers.py OUT.csv [--quick]
"""
import sys

import torch
import torch.nn.functional as F

import common
import mamba_ssm_scan


def scan_eager(u, delta, A, B, C, D, z, bias):
    dt = F.softplus(delta.float() + bias[None, :, None])
    uf, Bf, Cf = u.float(), B.float(), C.float()
    h = torch.zeros(u.shape[0], u.shape[1], A.shape[1], device=u.device)
    ys = []
    for t in range(u.shape[2]):
        dt_t = dt[:, :, t, None]
        h = torch.exp(dt_t * A) * h + dt_t * uf[:, :, t, None] * Bf[:, None, :, t]
        ys.append((h * Cf[:, None, :, t]).sum(-1))
    y = torch.stack(ys, -1) + D[None, :, None] * uf
    return (y * F.silu(z.float())).to(u.dtype)


def main():
    quick = "--quick" in sys.argv
    csv = common.Csv(common.out_path("peers_scan.csv"))
    dev = "cuda"

    x = torch.empty(1 << 28, device=dev, dtype=torch.float32)  # 1 GiB
    ms = common.median_ms(lambda: x.clone())
    bandwidth = 2 * x.numel() * 4 / (ms * 1e-3)
    del x
    a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    ms_mm = common.median_ms(lambda: a @ b)
    csv.row("ceiling", "matmul_peak", 8192, 0, 1, ms_mm, None, 2 * 8192.0 ** 3)
    csv.write(f"ceiling,copy_bandwidth,0,0,0,{bandwidth / 1e9:.3f},,0,0")
    del a, b

    with_mamba_ssm, why = mamba_ssm_scan.usable()  # loads, and matches the eager scan (in a child process)
    if not with_mamba_ssm:
        print(f"scan_peers.py: no mamba_ssm peer: {why}", flush=True)

    for shape in common.op_table(["scan", "scan_narrow"], quick):
        op, n, batch, channels, states = shape["op"], shape["N"], shape["batch"], shape["channels"], shape["states"]
        csv.row("floor", op, n, states, batch * channels, shape["fwd_bytes"] / bandwidth * 1e3,
                shape["fwdbwd_bytes"] / bandwidth * 1e3, 0)
        mk = lambda *s, dtype=torch.bfloat16: torch.randn(*s, device=dev, dtype=dtype)
        u, delta, z = mk(batch, channels, n), mk(batch, channels, n) - 1, mk(batch, channels, n)
        B, C = mk(batch, states, n), mk(batch, states, n)
        A = -torch.exp(0.5 * mk(channels, states, dtype=torch.float32))
        D, bias = mk(channels, dtype=torch.float32), 0.3 * mk(channels, dtype=torch.float32)
        leaves = [u, delta, z, B, C, A, D, bias]
        for t in leaves:
            t.requires_grad_(True)
        dout = torch.randn_like(u)
        if with_mamba_ssm:
            run = lambda: mamba_ssm_scan.scan(u, delta, A, B, C, D, z, bias)
            with torch.no_grad():
                f = common.median_ms(run)
            csv.row("mamba_ssm", op, n, states, batch * channels, f, common.median_ms(lambda: run().backward(dout), leaves), 0)
        if n > 4096:
            continue
        run = lambda: scan_eager(u, delta, A, B, C, D, z, bias)
        with torch.no_grad():
            f = common.median_ms(run)
        b = common.median_ms(lambda: run().backward(dout), leaves)
        csv.row("eager", op, n, states, batch * channels, f, b, 0)


if __name__ == "__main__":
    main()
