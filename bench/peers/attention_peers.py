"""Attention peers of the mixlab kernels, on the shapes of cli/kernel_bench.cpp (`mixlab kernel_bench`):

- sdpa_full:  torch SDPA, full causal attention (the flash back-end): what dense attention costs.
- flex:       FlexAttention (torch.compile) with the block masks of the two sparse patterns:
              swa   (kv <= q) & (q - kv < W)
              scout (kv == q) | (kv % S == S-1 & kv < q)      (docs/schemes.md, SCOUT, dense mask)
- eager:      the SCOUT authors' training path (docs/schemes.md), written here from that description:
              gather the checkpoints at stride S, dense Q K_c^T with the causal mask sliced at the
              checkpoint columns, a per-row self logit, one fp32 softmax over [self, checkpoints],
              split back into the two outputs.  Memory O(B H N N/S).

Usage: python3 attention_peers.py OUT.csv [--quick]
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


def main():
    quick = "--quick" in sys.argv
    csv = common.Csv(common.out_path("peers_attention.csv"))
    lengths = [1024, 16384] if quick else common.LENGTHS
    dev = "cuda"
    for hd in common.HEAD_DIMS:
        for n in lengths:
            bh = max(1, common.TOKENS // n)
            make = lambda: torch.randn(1, bh, n, hd, device=dev, dtype=torch.bfloat16, requires_grad=True)
            q, k, v = make(), make(), make()
            dout = torch.randn_like(q)
            grads = [q, k, v]

            def both(fn):
                return lambda: fn().backward(dout)

            with torch.no_grad():
                f_sdpa = common.timed_or_none(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
            b_sdpa = common.timed_or_none(both(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)), grads)
            csv.row("sdpa_full", "causal", n, hd, bh, f_sdpa, b_sdpa, 4.0 * hd * common.causal_pairs(n) * bh)

            W, S = common.WINDOW, common.SEGMENT
            masks = {
                "swa": (lambda b, h, qi, ki: (ki <= qi) & (qi - ki < W), common.window_pairs(n, W)),
                "scout": (lambda b, h, qi, ki: (ki == qi) | ((ki % S == S - 1) & (ki < qi)), common.checkpoint_pairs(n, S)),
            }
            for op, (mask_mod, pairs) in masks.items():
                block_mask = create_block_mask(mask_mod, None, None, n, n, device=dev)
                run = lambda: flex_compiled(q, k, v, block_mask=block_mask)
                with torch.no_grad():
                    f = common.timed_or_none(run)
                b = common.timed_or_none(both(run), grads)
                csv.row("flex", op, n, hd, bh, f, b, 4.0 * hd * pairs * bh)
                del block_mask
                torch._dynamo.reset()

            run = lambda: scout_eager(q, k, v, S)
            with torch.no_grad():
                f = common.timed_or_none(run)
            b = common.timed_or_none(both(run), grads) if f is not None else None
            csv.row("eager", "scout", n, hd, bh, f, b, 4.0 * hd * common.checkpoint_pairs(n, S) * bh)
            del q, k, v, dout, grads
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
