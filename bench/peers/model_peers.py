"""Whole-model peers of `mixlab bench`: the presets' language models written the way a researcher
would in PyTorch, compiled with `torch.compile`, attention through the strongest formulation we
know for each scheme:

    transformer   SDPA, is_causal=True (cuDNN / flash backend)
    swa           FlexAttention with a band block mask (kv <= q, q - kv < W)
    scout-swa     swa as above; checkpoint attention as FlexAttention over the checkpoints
                  gathered in front of the tokens: keys = [K[S-1::S] ; K], checkpoint j visible
                  when jS + S - 1 < t, token j only when j = t (SCOUT, arXiv 2509.00935, §3)
    mamba         Mamba-1 blocks (arXiv 2312.00752, §3.4) with the selective scan as torch's
                  associative_scan or as a log-depth doubling scan of pointwise ops (--mamba-scans;
                  the doubling scan is the faster of the two on an H200, the default); both
                  materialise [B, N, E, n] float32, so they run out of memory at long N; or with
                  mamba_ssm's CUDA scan (github.com/state-spaces/mamba; bench/peers/mamba_ssm_scan.py),
                  the implementation Mamba's users run, where its library was built and carried,
                  called as mamba_ssm calls it (an autograd.Function, where torch.compile breaks its
                  graph) and as one custom operator (mamba_ssm_op: the whole model one graph)
    scout-mamba   mamba and checkpoint attention as above

Same architecture as mixlab's presets (experiments/presets/*.json): pre-norm RMSNorm (eps 1e-6),
RoPE (theta 1e4, rotate-half) on q and k, SwiGLU MLP of hidden 8/3 d rounded up to 8, tied
embedding head, bf16 weights.  Forward + backward of the mean next-token cross-entropy (logits in
float32), timed with triton's do_bench (median, gradients set to None between calls).

    python3 bench/peers/model_peers.py OUT.csv --presets transformer,swa,scout-swa \
        --lengths 1024,4096,16384,65536 --d-model 768 --heads 12
Rows: peer,preset,N,d_model,fwd_bwd_ms (empty when out of memory).
"""
import argparse
import json
import math
import os

import torch
import torch.nn.functional as F
from torch._higher_order_ops.associative_scan import associative_scan
from torch.nn.attention.flex_attention import create_block_mask, flex_attention
from triton.testing import do_bench

import mamba_ssm_scan

MAMBA_SSM_SCANS = ("mamba_ssm", "mamba_ssm_op")  # --mamba-scans' forms of mamba_ssm's kernels (MambaSsm)

THETA = 1e4
PRESETS = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "presets")


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin


class Attention(torch.nn.Module):
    """q, k, v, o projections without bias; `attend` is the scheme."""

    def __init__(self, d, heads, attend):
        super().__init__()
        self.heads, self.attend = heads, attend
        self.qkv = torch.nn.Linear(d, 3 * d, bias=False)
        self.o = torch.nn.Linear(d, d, bias=False)

    def forward(self, x, cos, sin, masks):
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = self.attend(rope(q, cos, sin), rope(k, cos, sin), v, masks)  # [B, H, N, dh]
        return self.o(out.transpose(1, 2).reshape(b, n, d))


def full(q, k, v, masks):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def sliding(q, k, v, masks):
    return flex_attention(q, k, v, block_mask=masks["swa"])


def make_checkpoints(segment):
    def attend(q, k, v, masks):
        keys = torch.cat([k[:, :, segment - 1::segment], k], 2)    # [B, H, C + N, dh]
        values = torch.cat([v[:, :, segment - 1::segment], v], 2)
        return flex_attention(q, keys, values, block_mask=masks[f"scout{segment}"])
    return attend


class Mlp(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        hidden = ((math.ceil(8 / 3 * d) + 7) // 8) * 8
        self.gate_up = torch.nn.Linear(d, 2 * hidden, bias=False)
        self.down = torch.nn.Linear(hidden, d, bias=False)

    def forward(self, x, cos=None, sin=None, masks=None):
        gate, up = self.gate_up(x).chunk(2, -1)
        return self.down(F.silu(gate) * up)


def compose(earlier, later):
    """Two steps of h -> a h + b, `earlier` first: h -> a2 (a1 h + b1) + b2."""
    a1, b1 = earlier
    a2, b2 = later
    return a1 * a2, a2 * b1 + b2


def scan_associative(decay, drive):
    """h_t = decay_t h_{t-1} + drive_t from h_{-1} = 0, over dim 1; all [B, N, E, n] float32."""
    return associative_scan(compose, (decay, drive), dim=1, combine_mode="pointwise")[1]


def scan_doubling(decay, drive):
    """The same recurrence by recursive doubling (Hillis-Steele): after the round of span s, (a_t, b_t)
    composes the steps max(0, t-2s+1)..t; log2(N) rounds of pointwise ops, autograd for free."""
    a, b, span = decay, drive, 1
    while span < a.shape[1]:
        shifted = lambda x, fill: F.pad(x[:, :-span], (0, 0, 0, 0, span, 0), value=fill)
        a, b = a * shifted(a, 1.0), b + a * shifted(b, 0.0)
        span *= 2
    return b


SCANS = {"associative": scan_associative, "doubling": scan_doubling}


def check_scan(scan):
    """The scan against a loop over time, on a small input (a peer must compute the same thing)."""
    decay = torch.rand(2, 37, 3, 4, device="cuda")
    drive = torch.randn(2, 37, 3, 4, device="cuda")
    h, states = torch.zeros_like(drive[:, 0]), []
    for t in range(decay.shape[1]):
        h = decay[:, t] * h + drive[:, t]
        states.append(h)
    error = (scan(decay, drive) - torch.stack(states, 1)).abs().max().item()
    assert error < 1e-4, f"model_peers.py: the {scan.__name__} scan is off the loop by {error}"


class Mamba(torch.nn.Module):
    """Mamba-1 as mixers/mamba.cpp (d_state 16, conv 4, expand 2, dt_rank ceil(d/16)):
        [x, z] = in_proj(u);  x = SiLU(causal depthwise conv(x) + b);  [δ, B, C] = x_proj(x)
        Δ = softplus(dt_proj(δ));  h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t x_t;  y_t = C_t·h_t + D x_t
        out = out_proj(y ⊙ SiLU(z)),  A = -exp(A_log)"""

    def __init__(self, d, scan, n=16, conv=4, expand=2):
        super().__init__()
        inner, self.rank, self.n, self.scan = expand * d, (d + 15) // 16, n, scan
        self.in_proj = torch.nn.Linear(d, 2 * inner, bias=False)
        self.conv = torch.nn.Conv1d(inner, inner, conv, groups=inner, padding=conv - 1)
        self.x_proj = torch.nn.Linear(inner, self.rank + 2 * n, bias=False)
        self.dt_proj = torch.nn.Linear(self.rank, inner, bias=True)
        self.A_log = torch.nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(inner, 1))
        self.D = torch.nn.Parameter(torch.ones(inner))
        self.out_proj = torch.nn.Linear(inner, d, bias=False)

    def forward(self, u, cos=None, sin=None, masks=None):
        length = u.shape[1]
        x, z = self.in_proj(u).chunk(2, -1)                                      # [B, N, E] each
        x = F.silu(self.conv(x.transpose(1, 2))[..., :length]).transpose(1, 2)  # [B, N, E]
        delta, B, C = self.x_proj(x).split([self.rank, self.n, self.n], -1)
        dt = F.softplus(self.dt_proj(delta).float())                             # [B, N, E]
        A = -torch.exp(self.A_log.float())                                       # [E, n]
        decay = torch.exp(dt[..., None] * A)                                     # [B, N, E, n]
        drive = (dt * x.float())[..., None] * B.float()[:, :, None, :]            # [B, N, E, n]
        h = self.scan(decay, drive)                                              # [B, N, E, n]
        y = (h @ C.float()[..., None]).squeeze(-1) + self.D * x.float()          # [B, N, E]
        return self.out_proj((y * F.silu(z.float())).to(u.dtype))


class MambaSsm(Mamba):
    """The same block with mamba_ssm's CUDA scan (bench/peers/mamba_ssm_scan.py), written as
    mamba_ssm's Mamba module runs without causal_conv1d: channels before time from in_proj on, the
    scan fusing softplus(Δ + b), the D skip and the SiLU(z) gate, its own backward.  With
    as_operator, the scan is mamba_ssm_scan.scan_op: the same kernels as one custom operator, so that
    torch.compile does not break its graph at every block."""

    def __init__(self, d, scan=None, as_operator=False):
        super().__init__(d, scan)
        self.scan_fn = mamba_ssm_scan.scan_op if as_operator else mamba_ssm_scan.scan

    def forward(self, u, cos=None, sin=None, masks=None):
        length = u.shape[1]
        xz = (u @ self.in_proj.weight.t()).transpose(1, 2)                       # [B, 2E, N]
        x, z = xz.chunk(2, 1)                                                    # [B, E, N] each
        x = F.silu(self.conv(x)[..., :length])                                   # [B, E, N]
        delta, B, C = self.x_proj(x.transpose(1, 2)).split([self.rank, self.n, self.n], -1)  # [B, N, ·]
        dt = (delta @ self.dt_proj.weight.t()).transpose(1, 2)                   # [B, E, N], bias in the scan
        A = -torch.exp(self.A_log.float())                                       # [E, n]
        y = self.scan_fn(x, dt, A, B.transpose(1, 2), C.transpose(1, 2), self.D.float(), z,
                                self.dt_proj.bias.float())                       # [B, E, N]
        return self.out_proj(y.transpose(1, 2))


class LanguageModel(torch.nn.Module):
    def __init__(self, preset, d, heads, scan=scan_associative):
        super().__init__()
        self.vocab, self.heads = preset["vocab_size"], heads
        blocks, self.windows, self.segments = [], set(), set()
        for _ in range(preset["n_layers"]):
            for sub in preset["pattern"]:
                mixer = sub["mixer"]
                if mixer == "mlp":
                    blocks.append(Mlp(d))
                elif mixer == "attention":
                    blocks.append(Attention(d, heads, full))
                elif mixer == "swa":
                    self.windows.add(sub.get("window", 128))
                    blocks.append(Attention(d, heads, sliding))
                elif mixer == "checkpoint_attention":
                    self.segments.add(sub.get("segment_size", 10))
                    blocks.append(Attention(d, heads, make_checkpoints(sub.get("segment_size", 10))))
                elif mixer == "mamba":
                    if scan in MAMBA_SSM_SCANS:
                        blocks.append(MambaSsm(d, None, as_operator=scan == "mamba_ssm_op"))
                    else:
                        blocks.append(Mamba(d, scan))
                else:
                    raise SystemExit(f"model_peers.py: no peer for mixer '{mixer}'")
        assert len(self.windows) <= 1, "one window per model"
        self.embed = torch.nn.Embedding(self.vocab, d)
        self.blocks = torch.nn.ModuleList(blocks)
        self.norms = torch.nn.ModuleList([torch.nn.RMSNorm(d, eps=1e-6) for _ in range(len(blocks) + 1)])
        torch.nn.init.normal_(self.embed.weight, std=0.02)

    def masks(self, n, device):
        """The block masks of length n (built once per length, outside the timed step)."""
        masks = {}
        for w in self.windows:
            band = lambda b, h, q, kv: (kv <= q) & (q - kv < w)
            masks["swa"] = create_block_mask(band, None, None, n, n, device=device)
        for s in self.segments:
            c = len(range(s - 1, n, s))
            # key index kv < c: checkpoint kv (token kv*s + s - 1), visible once complete before q;
            # kv >= c: token kv - c, visible only to itself.
            gathered = lambda b, h, q, kv: torch.where(kv < c, kv * s + s - 1 < q, kv - c == q)
            masks[f"scout{s}"] = create_block_mask(gathered, None, None, n, c + n, device=device)
        return masks

    def forward(self, tokens, masks):
        n, dh = tokens.shape[1], self.embed.weight.shape[1] // self.heads
        inv = THETA ** (-torch.arange(0, dh, 2, device=tokens.device, dtype=torch.float32) / dh)
        angles = torch.arange(n, device=tokens.device, dtype=torch.float32)[:, None] * inv[None, :]
        both = torch.cat([angles, angles], -1)
        cos, sin = both.cos().to(torch.bfloat16), both.sin().to(torch.bfloat16)
        h = self.embed(tokens)
        for norm, block in zip(self.norms, self.blocks):
            h = h + block(norm(h), cos, sin, masks)
        return self.norms[-1](h) @ self.embed.weight.t()


def profile_one_step(step, model):
    """Three steps (compilation, warm-up), then one alone in the CUDA profiler's range."""
    for _ in range(3):
        step()
        for p in model.parameters():
            p.grad = None
    torch.cuda.synchronize()
    torch.cuda.profiler.start()
    step()
    torch.cuda.synchronize()
    torch.cuda.profiler.stop()
    for p in model.parameters():
        p.grad = None


def main():
    torch._dynamo.config.cache_size_limit = 64  # every (mode, N) of a preset compiles its own graph
    torch._dynamo.config.accumulated_cache_size_limit = 512
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--presets", default="transformer,swa,scout-swa,mamba,scout-mamba")
    parser.add_argument("--lengths", default="1024,4096,16384,65536")
    parser.add_argument("--d-model", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--eager", action="store_true", help="also time the uncompiled model")
    parser.add_argument("--profile-range", action="store_true",
                        help="instead of timing, run each step 3 times and a fourth alone inside "
                             "torch.cuda.profiler.start()/stop(), for `ncu --profile-from-start off` "
                             "(bench/kernel_breakdown.sh); no rows are written")
    parser.add_argument("--modes", default="default,reduce-overhead",
                        help="torch.compile modes to time; reduce-overhead replays CUDA graphs, as mixlab's "
                             "measure.execution=cuda_graph does (the peer row of a length is the fastest mode)")
    parser.add_argument("--mamba-scans", default="doubling,mamba_ssm,mamba_ssm_op",
                        help="scan formulations timed for presets with mamba, of: associative, doubling, "
                             "mamba_ssm (the reference CUDA scan, when bench/peers/mamba_ssm/build.sh's "
                             "library is carried; else skipped with the reason), mamba_ssm_op (the same "
                             "kernels as one torch.library custom operator) (the peer row is the "
                             "fastest); associative took 1,263 ms at N = 1k on an H200 "
                             "(2026-12-03), 37x the doubling scan, so it is not timed by default")
    args = parser.parse_args()
    with open(args.out, "w") as out:
        out.write("peer,preset,N,d_model,fwd_bwd_ms\n")
        for name in args.presets.split(","):
            preset = json.load(open(os.path.join(PRESETS, name + ".json")))
            has_mamba = any(sub["mixer"] == "mamba" for sub in preset["pattern"])
            for scan in args.mamba_scans.split(",") if has_mamba else ["associative"]:
                time_preset(name, preset, scan if has_mamba else None, args, out)


def time_preset(name, preset, scan, args, out):
    """Rows of one preset (and one scan formulation where it has Mamba blocks) at every length and mode."""
    if scan is not None:
        try:
            if scan in MAMBA_SSM_SCANS:
                ok, why = mamba_ssm_scan.usable()  # loads, and matches the eager scan (in a child process)
                if not ok:
                    raise RuntimeError(why)
            else:
                check_scan(SCANS[scan])
        except Exception as error:  # e.g. associative_scan unavailable in this PyTorch, no mamba_ssm library
            print(f"model_peers.py: {name}: the {scan} scan cannot run here: {error}", flush=True)
            return
    torch.manual_seed(0)
    blocks_scan = scan if scan in MAMBA_SSM_SCANS else SCANS.get(scan, scan_associative)
    model = LanguageModel(preset, args.d_model, args.heads, blocks_scan).cuda().to(torch.bfloat16)
    # One compiled graph per (mode, N), static shapes: with the default recompile limit (8)
    # the second mode's shapes sent FlexAttention to its unfused eager fallback (100x slower).
    torch._dynamo.reset()
    suffix = f"/{scan}" if scan else ""
    variants = [("torch.compile" + (f":default{suffix}" if suffix else "") if mode == "default"
                 else f"torch.compile:{mode}{suffix}", torch.compile(model, mode=mode, dynamic=False))
                for mode in args.modes.split(",")] + ([("eager" + suffix, model)] if args.eager else [])
    for n in [int(x) for x in args.lengths.split(",")]:
        tokens = torch.randint(0, model.vocab, (1, n + 1), device="cuda")
        masks = model.masks(n, "cuda")
        for peer, run in variants:
            def step():
                # One training iteration per call: under mode="reduce-overhead" this lets CUDA-graph
                # trees reuse the last step's output memory.  Session 32 (one H100): the whole-graph
                # mamba_ssm_op models failed every step without it ("accessing tensor output of
                # CUDAGraphs that has been overwritten by a subsequent run"); not yet rerun with it.
                torch.compiler.cudagraph_mark_step_begin()
                logits = run(tokens[:, :-1], masks)
                F.cross_entropy(logits.float().view(-1, model.vocab), tokens[:, 1:].reshape(-1)).backward()
            if args.profile_range:
                profile_one_step(step, model)
                continue
            try:
                ms = do_bench(step, warmup=10, rep=50, grad_to_none=list(model.parameters()), return_mode="median")
                row = f"{peer},{name},{n},{args.d_model},{ms:.4f}"
            except torch.OutOfMemoryError:
                torch._dynamo.reset()
                torch.cuda.empty_cache()
                row = f"{peer},{name},{n},{args.d_model},"
            except Exception as error:  # a formulation torch.compile cannot lower: said, not a row
                print(f"model_peers.py: {peer} {name} N={n} failed: {type(error).__name__}: {str(error)[:300]}", flush=True)
                torch._dynamo.reset()
                torch.cuda.empty_cache()
                continue
            print(row, flush=True)
            out.write(row + "\n")
            out.flush()

if __name__ == "__main__":
    main()
