"""Attention peers of the mixlab kernels, on the shapes of mixlab's op table (cli/kernel_ops.h, read
with `mixlab kernel_bench --list-ops`; bench/peers/common.py):

- sdpa_full:  torch SDPA, full causal attention (the flash back-end): what dense attention costs.
- flex:       FlexAttention (torch.compile), the strongest mask formulation found for each pattern:
              swa    band block mask over the tokens: (kv <= q) & (q - kv < W)
              scout  over the checkpoints gathered in front of the tokens: keys = [K[S-1::S] ; K]
                     (C = N // S checkpoints), checkpoint j visible when j*S + S-1 < q, token j only
                     when j = q: the block mask then holds only the kept pairs' blocks (the
                     checkpoint block is dense, the token block diagonal)
- flex_dense: FlexAttention with SCOUT's mask over the raw sequence, (kv == q) | (kv % S == S-1 &
              kv < q): every key block holds a checkpoint, so nothing is skipped (2-9x slower than
              the gathered form: kept for reference, not the peer to beat)
- eager:      the SCOUT authors' training path (docs/schemes.md), written here from that description:
              gather the checkpoints at stride S, dense Q K_c^T with the causal mask sliced at the
              checkpoint columns, a per-row self logit, one fp32 softmax over [self, checkpoints],
              split back into the two outputs.  Memory O(B H N N/S).

Usage: python3 attention_peers.py OUT.csv [--quick]      ($MIXLAB_BIN: the mixlab binary;
       $MIXLAB_PEER_OPS, e.g. causal,swa: only those ops)
"""
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

import common

flex_compiled = torch.compile(flex_attention, dynamic=False)


def scout_eager(q, k, v, s):
    """o_t = softmax over {t} U {checkpoints p < t}, as the authors' eager_sparse_attention_forward does it."""
    n, d = q.shape[-2], q.shape[-1]
    scale = d ** -0.5
    c = n // s
    idx = torch.arange(s - 1, c * s, s, device=q.device)            # checkpoint positions
    kc, vc = k[:, :, idx], v[:, :, idx]                               # [B, H, C, d]
    lc = torch.matmul(q, kc.transpose(-2, -1)).float() * scale        # [B, H, N, C]
    t = torch.arange(n, device=q.device)
    lc = lc.masked_fill(idx[None, :] >= t[:, None], float("-inf"))
    ls = (q * k).sum(-1, keepdim=True).float() * scale                # self logit [B, H, N, 1]
    p = torch.softmax(torch.cat([ls, lc], -1), -1).to(q.dtype)
    return p[..., :1] * v + torch.matmul(p[..., 1:], vc)


def scout_gathered(q, k, v, s, block_mask):
    """Flex over [checkpoints ; tokens]: the gather is part of the timed call, as it would be in a model."""
    c = q.shape[-2] // s
    keys = torch.cat([k[:, :, s - 1::s][:, :, :c], k], dim=2)        # [B, H, C + N, d]
    values = torch.cat([v[:, :, s - 1::s][:, :, :c], v], dim=2)
    return flex_compiled(q, keys, values, block_mask=block_mask)


def flex_runs(shape, q, k, v):
    """(impl, run) pairs of the Flex formulations of one shape's pattern."""
    n, dev = shape["N"], q.device
    if shape["op"] == "swa":
        w = shape["window"]
        band = create_block_mask(lambda b, h, qi, ki: (ki <= qi) & (qi - ki < w), None, None, n, n, device=dev)
        return [("flex", lambda: flex_compiled(q, k, v, block_mask=band))]
    s = shape["segment"]
    c = n // s
    gathered = create_block_mask(lambda b, h, qi, ki: torch.where(ki < c, ki * s + s - 1 < qi, ki - c == qi),
                                 None, None, n, c + n, device=dev)
    dense = create_block_mask(lambda b, h, qi, ki: (ki == qi) | ((ki % s == s - 1) & (ki < qi)),
                              None, None, n, n, device=dev)
    return [("flex", lambda: scout_gathered(q, k, v, s, gathered)),
            ("flex_dense", lambda: flex_compiled(q, k, v, block_mask=dense)),
            ("eager", lambda: scout_eager(q, k, v, s))]


def main():
    quick = "--quick" in sys.argv
    csv = common.Csv(common.out_path("peers_attention.csv"))
    for shape in common.op_table(["causal", "swa", "scout"], quick):
        n, hd, bh = shape["N"], shape["head_dim"], shape["batch_heads"]
        make = lambda: torch.randn(1, bh, n, hd, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        q, k, v = make(), make(), make()
        dout = torch.randn_like(q)
        grads = [q, k, v]
        if shape["op"] == "causal":
            runs = [("sdpa_full", lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))]
        else:
            runs = flex_runs(shape, q, k, v)
        for impl, run in runs:
            with torch.no_grad():
                f = common.timed_or_none(run)
            b = common.timed_or_none(lambda: run().backward(dout), grads) if f is not None else None
            csv.shape_row(impl, shape, f, b)
        del q, k, v, dout, grads, runs
        torch._dynamo.reset()
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
