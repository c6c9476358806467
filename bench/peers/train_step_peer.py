"""Training-step peer of bench/train_step.sh (issue 13): the attention points of
experiments/train-step-bench.json written the way a researcher would in PyTorch, timed as whole
training steps (forward, backward, gradient clipping, AdamW), in the two forms a user would pick:

    compile          torch.compile of the model with its loss (inductor, default mode), fused
                     AdamW, clip_grad_norm_
    compile+graph    the same compiled model and a capturable fused AdamW, the whole step
                     captured once as a CUDA graph and replayed (PyTorch's "whole-network
                     capture", torch.cuda.graphs), as mixlab's train.execution = cuda_graph does

The model is mixlab's for pattern ["attention"], 2 layers, 1 head (head dim = d_model): token
embedding, per layer h += o(attention(RoPE q, RoPE k, v of RMSNorm(h))) with causal SDPA, a final
RMSNorm and the tied embedding as the head; no biases.  The loss is the mean cross-entropy over
the query positions of MQAR (num_kv_pairs per sequence), logits in float32, and the head runs on
those positions only: their flat indices are found when the batch is made, as mixlab's loss
inputs are (harness/loss_inputs.h), so the head costs B·pairs rows, not B·N.
Precision as mixlab's `auto` on CUDA: float32 weights, the forward under bf16 autocast.
AdamW: betas (0.9, 0.95), weight decay 0.1 on matrices only, lr 1e-3; gradients clipped to norm
1.  Data: 16 fixed batches of random tokens made on the GPU beforehand (the timing is of the step,
not of a data generator); losses are therefore not comparable with mixlab's MQAR losses.

    python3 bench/peers/train_step_peer.py OUT.csv [--steps 150] [--points 64:64,...] [--profile-range]

--points keeps the (d_model:seq_len) points named; --profile-range runs one more step after the
timed ones alone inside torch.cuda.profiler.start()/stop(), for `ncu --profile-from-start off`
(bench/kernel_breakdown.sh, MIXLAB_BREAKDOWN_PHASE=train).
Rows: peer,point,d_model,seq_len,batch,ms_per_step,steps_per_s,error
A row whose peer failed (e.g. a capture error) has the first line of the error and no rate.
"""
import argparse
import time

import torch
import torch.nn.functional as F

import common

VOCAB = 8192
# (seq_len, num_kv_pairs, batch) zipped in experiments/train-step-bench.json, times d_model.
POINTS = [(64, 4, 512), (512, 64, 128)]
WIDTHS = [64, 256]


class RMSNorm(torch.nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight, self.eps = torch.nn.Parameter(torch.ones(d)), eps

    def forward(self, x):  # normalised in float32, scaled in x's dtype
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.square().mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


def rope(x, cos, sin):  # x: [B, H, N, dh]; cos, sin: [N, dh] (rotate-half)
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin


class AttentionLM(torch.nn.Module):
    def __init__(self, d, layers=2, heads=1, theta=1e4, seq_len=64):
        super().__init__()
        self.heads, self.dh = heads, d // heads
        self.embed = torch.nn.Embedding(VOCAB, d)
        self.qkv = torch.nn.ModuleList([torch.nn.Linear(d, 3 * d, bias=False) for _ in range(layers)])
        self.o = torch.nn.ModuleList([torch.nn.Linear(d, d, bias=False) for _ in range(layers)])
        self.norms = torch.nn.ModuleList([RMSNorm(d) for _ in range(layers + 1)])
        for p in self.parameters():
            if p.dim() > 1:
                torch.nn.init.normal_(p, std=0.02)
        inv = theta ** (-torch.arange(0, self.dh, 2, dtype=torch.float64) / self.dh)
        angles = torch.arange(seq_len, dtype=torch.float64)[:, None] * inv[None, :]
        both = torch.cat([angles, angles], -1)
        self.register_buffer("cos", both.cos().float())  # [N, dh]
        self.register_buffer("sin", both.sin().float())

    def forward(self, tokens):  # tokens: [B, N] -> final hidden states [B, N, d]
        b, n = tokens.shape
        h = self.embed(tokens)
        for i in range(len(self.qkv)):
            q, k, v = self.qkv[i](self.norms[i](h)).view(b, n, 3, self.heads, self.dh).permute(2, 0, 3, 1, 4)
            q, k = rope(q, self.cos, self.sin), rope(k, self.cos, self.sin)
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, H, N, dh]
            h = h + self.o[i](out.transpose(1, 2).reshape(b, n, -1))
        return self.norms[-1](h)


def mqar_like_batches(count, batch, seq_len, pairs, device):
    """Random tokens; targets at `pairs` random positions of each sequence's second half:
    (tokens [B, N], rows [B·pairs] flat positions that have a target, targets [B·pairs])."""
    batches = []
    for _ in range(count):
        tokens = torch.randint(0, VOCAB, (batch, seq_len), device=device)
        cols = seq_len // 2 + torch.rand(batch, seq_len // 2, device=device).argsort(-1)[:, :pairs]
        rows = (torch.arange(batch, device=device)[:, None] * seq_len + cols.sort(-1).values).reshape(-1)
        batches.append((tokens, rows, torch.randint(0, VOCAB, (batch * pairs,), device=device)))
    return batches


def make_optimizer(model, capturable):
    matrices = [p for p in model.parameters() if p.dim() > 1]
    others = [p for p in model.parameters() if p.dim() <= 1]
    groups = [{"params": matrices, "weight_decay": 0.1}, {"params": others, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, fused=True, capturable=capturable)


class QueryLoss(torch.nn.Module):
    """The whole loss as one module, so torch.compile sees (and fuses) the head and the loss too."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, tokens, rows, targets):
        with torch.autocast("cuda", dtype=torch.bfloat16):  # mixlab's precision "auto" on CUDA
            hidden = self.lm(tokens)
            logits = hidden.reshape(-1, hidden.shape[-1])[rows] @ self.lm.embed.weight.t()  # [B·pairs, V]
        return F.cross_entropy(logits.float(), targets)


PROFILE_RANGE = False  # --profile-range


def timed(run_step, steps, warmup=10):
    """ms per step: `warmup` steps untimed, then `steps` timed between two synchronisations
    (then, with --profile-range, one more step alone in the profiler's range)."""
    for i in range(warmup):
        run_step(i)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(steps):
        run_step(warmup + i)
    torch.cuda.synchronize()
    ms = 1000 * (time.perf_counter() - start) / steps
    if PROFILE_RANGE:
        torch.cuda.profiler.start()
        run_step(warmup + steps)
        torch.cuda.synchronize()
        torch.cuda.profiler.stop()
    return ms


def compiled_eager_steps(model, batches, steps):
    compiled = torch.compile(QueryLoss(model))
    opt = make_optimizer(model, capturable=False)

    def run_step(i):
        compiled(*batches[i % len(batches)]).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return timed(run_step, steps)


def compiled_graph_steps(model, batches, steps):
    compiled = torch.compile(QueryLoss(model))
    opt = make_optimizer(model, capturable=True)
    static = [t.clone() for t in batches[0]]  # tokens, rows, targets: the graph's inputs

    def body():
        loss = compiled(*static)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        opt.step()
        return loss

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # compile, and let autograd and the optimizer make their state
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            body()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)  # backward allocates the gradients from the graph's pool
    with torch.cuda.graph(graph):
        body()

    def run_step(i):
        for buffer, value in zip(static, batches[i % len(batches)]):
            buffer.copy_(value, non_blocking=True)
        graph.replay()

    return timed(run_step, steps)


PEERS = {"compile": compiled_eager_steps, "compile+graph": compiled_graph_steps}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--points", default="", help="d_model:seq_len pairs to keep, e.g. 64:64,64:512 (default: all)")
    parser.add_argument("--profile-range", action="store_true", help="one more step inside the CUDA profiler's range")
    args = parser.parse_args()
    global PROFILE_RANGE
    PROFILE_RANGE = args.profile_range
    keep = {tuple(int(x) for x in item.split(":")) for item in args.points.split(",") if item}
    with open(args.out, "w") as out:
        out.write("peer,point,d_model,seq_len,batch,ms_per_step,steps_per_s,error\n")
        for seq_len, pairs, batch in POINTS:
            for d in WIDTHS:
                if keep and (d, seq_len) not in keep:
                    continue
                point = f"attention · mqar d={d} batch_size={batch} data.num_kv_pairs={pairs} seq_len={seq_len}"
                for name in args.peers.split(","):
                    torch.manual_seed(0)
                    batches = mqar_like_batches(16, batch, seq_len, pairs, "cuda")
                    model = AttentionLM(d, seq_len=seq_len).cuda()
                    try:
                        ms, error = PEERS[name](model, batches, args.steps), ""
                    except Exception as e:  # a peer that cannot run is a row that says why
                        ms, error = None, str(e).splitlines()[0].replace(",", ";")[:200] if str(e) else type(e).__name__
                    rate = f"{1000 / ms:.1f}" if ms else ""
                    row = f"{name},{point},{d},{seq_len},{batch},{f'{ms:.4f}' if ms else ''},{rate},{error}"
                    common.write_row(out, row)
                    del model, batches
                    common.forget_compiled()


if __name__ == "__main__":
    main()
