"""One SCOUT-SWA language-model training step (forward + backward) in eager PyTorch, the peer
of `mixlab bench --preset scout-swa --phases forward_backward --device cuda`.

The model mirrors experiments/presets/scout-swa.json: vocab 256, d_model 256, 4 heads, 2 units of
[swa W=128, SwiGLU MLP, checkpoint attention S=10, SwiGLU MLP], pre-norm RMSNorm, tied head, RoPE
(theta 1e4, rotate-half), bf16.  The attention parts are written the way a researcher would in
eager PyTorch: sliding window = SDPA with a boolean band mask; checkpoint attention = the SCOUT
authors' approach (docs/schemes.md, "The authors' training path": gather the checkpoints K[S-1::S], a dense Q·K_cᵀ block
masked to p < t, one fp32 softmax over [self, checkpoints]).

    python3 bench/peers/scout_lm_step.py [N ...]        prints N, median ms of forward+backward
"""
import math
import sys

import torch
import torch.nn.functional as F
from triton.testing import do_bench

VOCAB, D, HEADS, UNITS, WINDOW, SEGMENT, THETA = 256, 256, 4, 2, 128, 10, 1e4
HIDDEN = ((math.ceil(8 / 3 * D) + 7) // 8) * 8


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin


class Attention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v, self.o = (torch.nn.Linear(D, D, bias=False) for _ in range(4))

    def heads(self, x, cos, sin):
        b, n, _ = x.shape
        split = lambda t: t.view(b, n, HEADS, D // HEADS).transpose(1, 2)
        return rope(split(self.q(x)), cos, sin), rope(split(self.k(x)), cos, sin), split(self.v(x))

    def merge(self, o):
        b, h, n, dh = o.shape
        return self.o(o.transpose(1, 2).reshape(b, n, h * dh))


class SlidingWindow(Attention):
    def forward(self, x, cos, sin):
        q, k, v = self.heads(x, cos, sin)
        n = x.shape[1]
        t = torch.arange(n, device=x.device)
        band = (t[None, :] <= t[:, None]) & (t[:, None] - t[None, :] < WINDOW)
        return self.merge(F.scaled_dot_product_attention(q, k, v, attn_mask=band))


class Checkpoint(Attention):
    def forward(self, x, cos, sin):
        q, k, v = self.heads(x, cos, sin)
        n, scale = x.shape[1], 1.0 / math.sqrt(D // HEADS)
        kc, vc = k[:, :, SEGMENT - 1::SEGMENT], v[:, :, SEGMENT - 1::SEGMENT]
        positions = torch.arange(SEGMENT - 1, n, SEGMENT, device=x.device)
        visible = positions[None, :] < torch.arange(n, device=x.device)[:, None]      # [N, C]
        logits_c = (q @ kc.transpose(-1, -2)).float() * scale                          # [B,H,N,C]
        logits_c = logits_c.masked_fill(~visible, float("-inf"))
        logit_self = (q * k).sum(-1, keepdim=True).float() * scale                      # [B,H,N,1]
        p = torch.softmax(torch.cat([logit_self, logits_c], -1), -1).to(q.dtype)
        return self.merge(p[..., :1] * v + p[..., 1:] @ vc)


class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.gate, self.up = torch.nn.Linear(D, HIDDEN, bias=False), torch.nn.Linear(D, HIDDEN, bias=False)
        self.down = torch.nn.Linear(HIDDEN, D, bias=False)

    def forward(self, x, cos=None, sin=None):
        return self.down(F.silu(self.gate(x)) * self.up(x))


class ScoutSwa(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, D)
        self.blocks = torch.nn.ModuleList([m for _ in range(UNITS) for m in (SlidingWindow(), Mlp(), Checkpoint(), Mlp())])
        self.norms = torch.nn.ModuleList([torch.nn.RMSNorm(D, eps=1e-6) for _ in range(4 * UNITS + 1)])

    def forward(self, tokens):
        n = tokens.shape[1]
        inv = THETA ** (-torch.arange(0, D // HEADS, 2, device=tokens.device, dtype=torch.float64) / (D // HEADS))
        angles = torch.arange(n, device=tokens.device, dtype=torch.float64)[:, None] * inv[None, :]
        full = torch.cat([angles, angles], -1)
        cos, sin = full.cos().to(torch.bfloat16), full.sin().to(torch.bfloat16)
        h = self.embed(tokens)
        for norm, block in zip(self.norms, self.blocks):
            h = h + block(norm(h), cos, sin)
        return self.norms[-1](h) @ self.embed.weight.t()


def main():
    lengths = [int(a) for a in sys.argv[1:]] or [4096, 8192, 16384, 32768]
    torch.manual_seed(0)
    model = ScoutSwa().cuda().to(torch.bfloat16)
    print(f"eager SCOUT-SWA: {sum(p.numel() for p in model.parameters())} parameters")
    print("N,eager_fwd_bwd_ms")
    for n in lengths:
        tokens = torch.randint(0, VOCAB, (1, n + 1), device="cuda")

        def step():
            logits = model(tokens[:, :-1])
            F.cross_entropy(logits.float().view(-1, VOCAB), tokens[:, 1:].reshape(-1)).backward()

        try:
            ms = do_bench(step, warmup=10, rep=50, grad_to_none=list(model.parameters()), return_mode="median")
            print(f"{n},{ms:.3f}", flush=True)
        except torch.OutOfMemoryError:
            print(f"{n},OOM", flush=True)
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
