"""Decode peer of `mixlab sweep` decode rows (issue 13): a preset written as gpt-fast writes a
decode step (static state buffers of the longest context, the position a device tensor, the
step compiled with torch.compile and replayed as one CUDA graph: captured by hand (default) or by
mode="reduce-overhead"), greedy decoding from a one-token prompt, bf16, random init.  The step's
attention over its cache is written several ways (--attention; the fastest is the peer): SDPA's
default dispatch picks cuDNN for this masked single-query product, which the first valid run
(2026-12-04) measured at 31 ms per step at 2k, 20x mixlab's.

    python3 bench/peers/decode_peer.py OUT.csv --preset qwen2-340m --batch 16 --lengths 2048,8192

Same architecture as mixlab's preset (experiments/presets/*.json): the preset's pattern of
sublayers repeated n_layers times, each pre-norm RMSNorm + residual, a final RMSNorm, the embedding
as the head where tied; no biases but Mamba's conv and Δ.  The peer knows the sublayers of issue
13's decode target and their static state (docs/decode.md), one buffer per layer and per tensor:

    attention             K, V [B, H, N, d_h]: write slot t, attend to slots <= t
    swa                   a ring K, V [B, H, min(N, W), d_h]: write slot t mod W, attend to slots <= t
                          (every slot once t >= W - 1)
    checkpoint_attention  one K, V slot per segment [B, H, ceil(N/S), d_h] (SCOUT, summary = token):
                          write slot floor(t/S), attend to slots m <= floor(t/S)
    mamba                 conv [B, E, K-1] (model dtype), SSM [B, E, n] (float32)
    mlp                   none (SwiGLU)

so qwen2-340m ([attention, mlp] x 24), scout-swa-470m ([swa W=1024, mlp, checkpoint_attention
S=10, mlp] x 17), scout-mamba-430m ([mamba, mlp, checkpoint_attention S=10, mlp] x 14) and
mamba-546m ([mamba] x 74).  Attention-type layers use RoPE (rotate-half, the sublayer's theta) on q
and k at the absolute position t before k is written.  A preset with any other sublayer, or an
option the peer does not model, stops the run.  Each row's work starts by printing the parameter
count (mixlab's: 341.1M, 469.6M, 430.8M, 545.5M for these four).  The step reads its whole state
(gpt-fast's mask over the longest context); mixlab's reads a power-of-two span above the position
(harness/static_decoder.h).

Compiled once (--compile-once auto, the default): where no state of the model grows with the
context at the requested lengths (mamba and mlp only, or swa rings with W <= every length), the
state, and so the step, is the same at every N.  Such a model is compiled and timed once, at the
longest length, and that row is written for every length with the same ms, its peer name ending
in "+fixed-state-timed-once".  Models with a growing cache (attention, checkpoint_attention) are
compiled per length, each capacity its own static shape, as gpt-fast compiles each max length.
A model with no attention sublayer runs one step formulation ("no-attention"), whatever
--attention says.

Also measured here, for the floor of a step: the copy bandwidth of this GPU (a 4 GiB
device-to-device copy, bytes read + written over time), and per row the bytes a step must read
(weights + every state buffer at the end of the generation: KV caches, rings, checkpoint slots,
conv and SSM states).
Rows: peer,preset,batch,N,ms_per_step,tokens_per_s,floor_ms,bandwidth_gb_s

Dev check (CPU, float64, no GPU, no compile): bench/peers/decode_peer_check.py compares the
parameter count with a formula for each preset, and the step, token by token, with a separately
written full-sequence forward of the same weights for every sublayer kind.
"""
import argparse
import contextlib
import json
import math
import os
import time

import torch
import torch.nn.functional as F

try:  # PyTorch >= 2.3; the CPU check runs on older versions, which need neither
    from torch.nn.attention import SDPBackend, sdpa_kernel
except ImportError:
    SDPBackend = sdpa_kernel = None

PRESETS = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "presets")


def load_preset(name):
    """experiments/presets/NAME.json, whose lines starting with // are comments (as mixlab reads them)."""
    with open(os.path.join(PRESETS, name + ".json")) as file:
        return json.loads("".join(line for line in file if not line.lstrip().startswith("//")))


def copy_bandwidth():
    """Bytes read + written per second by a 4 GiB copy on the current GPU (median of 10)."""
    a = torch.empty(1 << 31, dtype=torch.bfloat16, device="cuda")
    b = torch.empty_like(a)
    times = []
    for _ in range(12):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        b.copy_(a)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    return 2 * a.numel() * a.element_size() / sorted(times[2:])[len(times[2:]) // 2]


class _RMSNorm(torch.nn.Module):
    """y = x / sqrt(mean(x²) + eps) · w, for PyTorch versions without torch.nn.RMSNorm (the CPU check)."""

    def __init__(self, d, eps):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


RMSNorm = getattr(torch.nn, "RMSNorm", _RMSNorm)


def linear(d_in, d_out, std, bias=False):
    layer = torch.nn.Linear(d_in, d_out, bias=bias)
    torch.nn.init.normal_(layer.weight, std=std)
    return layer


def reduced_to_float(x):
    """float32 for bf16 / fp16, x itself otherwise (float64 stays float64)."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


class RopeTable(torch.nn.Module):
    """RoPE rows of positions 0 .. capacity-1 for one theta, shared by the layers that use it:
        inv_i = θ^(-2i/d_h),  angle(p, i) = p · inv_i,  cos, sin: [capacity, d_h] (the angles twice)
    computed in float64, then cast to the model's dtype."""

    def __init__(self, theta, dh, capacity, dtype, device):
        super().__init__()
        inv = theta ** (-torch.arange(0, dh, 2, dtype=torch.float64) / dh)
        angles = torch.arange(capacity, dtype=torch.float64)[:, None] * inv[None, :]
        both = torch.cat([angles, angles], -1)
        self.register_buffer("cos", both.cos().to(dtype=dtype, device=device))  # [capacity, dh]
        self.register_buffer("sin", both.sin().to(dtype=dtype, device=device))

    def rows(self, pos):  # pos: [1] -> cos, sin: [1, dh]
        return self.cos[pos], self.sin[pos]


def rope(x, cos, sin):
    """rotate-half RoPE: x·cos + [-x₂, x₁]·sin, x: [..., dh], cos / sin broadcast to it."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin


def attend(q, k, v, visible, formulation):
    """q: [B, H, 1, dh]; k, v: [B, H, slots, dh]; visible: [1, slots] -> [B, H, 1, dh].
    "sdpa": F.scaled_dot_product_attention with the mask, under the backends `sdpa_kernel`
    allows; "matmul": softmax(q·kᵀ/√dh, masked) · v written out, which inductor fuses."""
    if formulation == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=visible)
    scores = reduced_to_float(q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5  # [B, H, 1, slots]
    scores = scores.masked_fill(~visible, float("-inf"))
    return scores.softmax(-1).to(v.dtype) @ v


class Attention(torch.nn.Module):
    """Causal multi-head attention on a static K, V cache of one slot per position:
        [q | k | v] = W_qkv x,  q, k ← RoPE(·, t),  K[t] ← k,  V[t] ← v
        o = Σ_{j ≤ t} softmax_j(q·K[j] / √d_h) V[j],  y = W_o o
    Subclasses change only which slot a token writes and which slots it sees."""

    FIELDS = ("rope_theta",)
    STATE = ("k_cache", "v_cache")

    def __init__(self, spec, d, heads, std, formulation):
        super().__init__()
        self.heads, self.dh, self.formulation = heads, d // heads, formulation
        self.theta = spec.get("rope_theta", 1e4)  # mixlab's default for every attention entry
        self.qkv = linear(d, 3 * d, std)  # W_q, W_k, W_v stacked, as mixlab's static step holds them
        self.o = linear(d, d, std)

    def slot_count(self, capacity):
        return capacity

    def slot(self, pos):  # pos: [1] -> the slot this token writes, [1]
        return pos

    def visible(self, slots, pos):  # slots: [slots] -> bool [slots]
        return slots <= pos

    def allocate(self, batch, capacity, dtype, device, rope_table):
        # One buffer per layer and per k / v, as gpt-fast's KVCache modules hold them: a step
        # writes one slot of each in place.  (The first version sliced one [layers, ...] buffer per
        # layer; inductor then copied the whole buffer at every layer's write, 31 ms per step at
        # 2k, 2026-12-04.)
        shape = (batch, self.heads, self.slot_count(capacity), self.dh)
        self.register_buffer("k_cache", torch.zeros(shape, dtype=dtype, device=device))
        self.register_buffer("v_cache", torch.zeros(shape, dtype=dtype, device=device))
        self.rope = rope_table(self.theta)

    def forward(self, x, pos):  # x: [B, d], pos: [1] -> [B, d]
        b = x.shape[0]
        q, k, v = self.qkv(x).view(b, 3, self.heads, 1, self.dh).unbind(1)  # [B, H, 1, dh] each
        cos, sin = self.rope.rows(pos)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        slot = self.slot(pos)
        self.k_cache[:, :, slot] = k  # gpt-fast's KVCache.update: index_put_ at the slot
        self.v_cache[:, :, slot] = v
        slots = torch.arange(self.k_cache.shape[2], device=pos.device)
        out = attend(q, self.k_cache, self.v_cache, self.visible(slots, pos)[None, :], self.formulation)
        return self.o(out.reshape(b, -1))


class SlidingWindow(Attention):
    """swa: query t sees keys t-W+1 .. t, held in a ring of min(capacity, W) slots.  Token t
    writes slot t mod W; slot j is visible when j <= t (every slot once t >= W-1, each then
    holding one of the last W keys, which carry the RoPE phase of their own position)."""

    FIELDS = ("window", "rope_theta", "query_block")

    def __init__(self, spec, d, heads, std, formulation):
        super().__init__(spec, d, heads, std, formulation)
        self.window = spec.get("window", 1024)

    def slot_count(self, capacity):
        return min(capacity, self.window)

    def slot(self, pos):
        return pos.remainder(self.window)


class Checkpoint(Attention):
    """SCOUT checkpoint attention (summary = token): query t sees itself and the checkpoints
    p_m = mS+S-1 < t, one softmax.  One slot per segment, ceil(capacity/S): token t writes slot
    floor(t/S) and sees slots m <= floor(t/S), the completed checkpoints (m < floor(t/S)) and, in
    its own segment's slot, itself; the segment's last token writes last, leaving the checkpoint."""

    FIELDS = ("segment_size", "rope_theta", "query_block", "summary")

    def __init__(self, spec, d, heads, std, formulation):
        super().__init__(spec, d, heads, std, formulation)
        if spec.get("summary", "token") != "token":
            raise SystemExit(f"decode_peer.py: checkpoint_attention summary {spec['summary']!r}: "
                             "the peer has only summary = token (mixlab's static step has only it)")
        self.segment = spec.get("segment_size", 10)

    def slot_count(self, capacity):
        return -(-capacity // self.segment)

    def slot(self, pos):
        return torch.div(pos, self.segment, rounding_mode="floor")

    def visible(self, slots, pos):
        return slots <= self.slot(pos)


class Mamba(torch.nn.Module):
    """Mamba-1 (mixers/mamba.cpp), one token, E = expand·d:
        [x, z] = W_in u                                 d -> 2E, no bias
        c = b_conv + Σ_i w_i · (conv state ‖ x)_i,  u = SiLU(c)  depthwise, K taps; state: last K-1 x
        [δ, B, C] = W_x u                               E -> R + n + n, no bias
        Δ = softplus(W_dt δ + b_dt),  A = -exp(A_log)   [E], [E, n]
        h ← exp(Δ A) ⊙ h + (Δ u) B,   y = (h · C + D u) ⊙ SiLU(z)
        out = W_out y                                   E -> d, no bias
    The SSM state and its arithmetic are float32 (float64 in a float64 model), as mixlab's."""

    FIELDS = ("d_state", "d_conv", "expand", "dt_rank", "dt_min", "dt_max", "dt_init_floor")
    STATE = ("conv_state", "ssm_state")

    def __init__(self, spec, d, heads, std, formulation):
        super().__init__()
        E, n, K = int(spec.get("expand", 2) * d), spec.get("d_state", 16), spec.get("d_conv", 4)
        R = spec.get("dt_rank", 0) or -(-d // 16)  # 0: mixlab's "auto", ceil(d/16)
        self.E, self.n, self.K, self.R = E, n, K, R
        self.in_proj = linear(d, 2 * E, std)
        self.conv = torch.nn.Conv1d(E, E, K, groups=E)  # weight [E, 1, K], bias [E]; default init
        self.x_proj = linear(E, R + 2 * n, std)
        self.dt_proj = torch.nn.Linear(R, E)  # with bias b_dt
        self.A_log = torch.nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(E, 1))
        self.D = torch.nn.Parameter(torch.ones(E))
        self.out_proj = linear(E, d, std)
        with torch.no_grad():  # Mamba's Δ initialisation: b_dt = softplus⁻¹(dt), dt log-uniform
            torch.nn.init.uniform_(self.dt_proj.weight, -R ** -0.5, R ** -0.5)
            lo, hi = math.log(spec.get("dt_min", 1e-3)), math.log(spec.get("dt_max", 0.1))
            dt = torch.exp(torch.rand(E) * (hi - lo) + lo).clamp(min=spec.get("dt_init_floor", 1e-4))
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def allocate(self, batch, capacity, dtype, device, rope_table):
        ssm = torch.float64 if dtype == torch.float64 else torch.float32
        self.register_buffer("conv_state", torch.zeros(batch, self.E, self.K - 1, dtype=dtype, device=device))
        self.register_buffer("ssm_state", torch.zeros(batch, self.E, self.n, dtype=ssm, device=device))

    def forward(self, x, pos):  # x: [B, d] -> [B, d]; the step does not read the position
        s = self.ssm_state.dtype
        xin, z = self.in_proj(x).chunk(2, -1)  # [B, E] each
        window = torch.cat([self.conv_state, xin[:, :, None]], -1)  # [B, E, K], oldest first
        self.conv_state.copy_(window[:, :, 1:])
        c = (window.to(s) * self.conv.weight[:, 0].to(s)).sum(-1) + self.conv.bias.to(s)
        u = F.silu(c).to(x.dtype)  # [B, E]
        delta, B, C = self.x_proj(u).split([self.R, self.n, self.n], -1)
        dt = F.softplus(F.linear(delta, self.dt_proj.weight).to(s) + self.dt_proj.bias.to(s))  # [B, E]
        A = -torch.exp(self.A_log.to(s))  # [E, n]
        u = u.to(s)
        h = torch.exp(dt[:, :, None] * A) * self.ssm_state + (dt * u)[:, :, None] * B.to(s)[:, None, :]
        self.ssm_state.copy_(h)  # [B, E, n]
        y = (h * C.to(s)[:, None, :]).sum(-1) + self.D.to(s) * u
        return self.out_proj((y * F.silu(z.to(s))).to(x.dtype))


class MLP(torch.nn.Module):
    """SwiGLU: y = W_down(SiLU(W_gate x) ⊙ W_up x), W_gate and W_up stacked [2·hidden, d]."""

    FIELDS = ("hidden", "expand", "activation")
    STATE = ()

    def __init__(self, spec, d, heads, std, formulation):
        super().__init__()
        if spec.get("activation", "swiglu") != "swiglu":
            raise SystemExit(f"decode_peer.py: mlp activation {spec['activation']!r}: the peer has only swiglu")
        hidden = spec.get("hidden", 0) or 8 * -(-math.ceil(spec.get("expand", 8 / 3) * d) // 8)
        self.gate_up = linear(d, 2 * hidden, std)
        self.down = linear(hidden, d, std)

    def allocate(self, batch, capacity, dtype, device, rope_table):
        pass

    def forward(self, x, pos):
        gate, up = self.gate_up(x).chunk(2, -1)
        return self.down(F.silu(gate) * up)


SUBLAYERS = {"attention": Attention, "swa": SlidingWindow, "checkpoint_attention": Checkpoint,
             "mamba": Mamba, "mlp": MLP}
ATTENTION_KINDS = ("attention", "swa", "checkpoint_attention")
MODEL_FIELDS = {"name", "description", "vocab_size", "d_model", "n_heads", "n_layers", "pattern",
                "tie_embeddings", "norm_eps", "init_std"}


def check_preset(preset):
    """Stops the run (SystemExit) on a model option or sublayer the peer does not model."""
    unknown = set(preset) - MODEL_FIELDS
    if unknown:
        raise SystemExit(f"decode_peer.py: preset {preset.get('name')}: model options {sorted(unknown)} "
                         "are not modelled by the peer")
    for spec in preset["pattern"]:
        kind = spec["mixer"]
        if kind not in SUBLAYERS:
            raise SystemExit(f"decode_peer.py: preset {preset.get('name')}: the peer has no {kind!r} "
                             f"sublayer (it knows {', '.join(SUBLAYERS)})")
        extra = set(spec) - {"mixer"} - set(SUBLAYERS[kind].FIELDS)
        if extra:
            raise SystemExit(f"decode_peer.py: preset {preset.get('name')}: {kind} fields {sorted(extra)} "
                             "are not modelled by the peer")


class Block(torch.nn.Module):
    """One sublayer with its pre-norm and residual: h + mixer(RMSNorm(h))."""

    def __init__(self, mixer, d, eps):
        super().__init__()
        self.norm, self.mixer = RMSNorm(d, eps=eps), mixer

    def forward(self, h, pos):
        return h + self.mixer(self.norm(h), pos)


class Decoder(torch.nn.Module):
    """The preset's pattern x n_layers as Blocks, with the static state of `capacity` tokens.
    Parameters are initialised in float32 on the CPU, then moved; the state is allocated on
    `device` in its own dtype (the model's, float32 for Mamba's SSM state)."""

    def __init__(self, preset, batch, capacity, attention="matmul", dtype=torch.bfloat16, device="cpu"):
        super().__init__()
        check_preset(preset)
        d, heads, std = preset["d_model"], preset["n_heads"], preset["init_std"]
        self.embed = torch.nn.Embedding(preset["vocab_size"], d)
        torch.nn.init.normal_(self.embed.weight, std=std)
        self.blocks = torch.nn.ModuleList(
            Block(SUBLAYERS[spec["mixer"]](spec, d, heads, std, attention), d, preset["norm_eps"])
            for _ in range(preset["n_layers"]) for spec in preset["pattern"])
        self.norm = RMSNorm(d, eps=preset["norm_eps"])
        self.head = None if preset["tie_embeddings"] else linear(d, preset["vocab_size"], std)
        self.to(device=device, dtype=dtype)
        tables = {}

        def rope_table(theta):  # one table per theta, shared by the layers that use it
            if theta not in tables:
                tables[theta] = RopeTable(theta, d // heads, capacity, dtype, device)
            return tables[theta]
        for block in self.blocks:
            block.mixer.allocate(batch, capacity, dtype, device, rope_table)

    def state_buffers(self):
        """Every tensor of the decode state (what a step reads and writes besides the weights)."""
        return [getattr(block.mixer, name) for block in self.blocks for name in block.mixer.STATE]

    def parameter_count(self):
        return sum(p.numel() for p in self.parameters())

    def forward(self, token, pos):  # token: [B], pos: [1] -> logits [B, V]
        h = self.embed(token)
        for block in self.blocks:
            h = block(h, pos)
        h = self.norm(h)
        return h @ self.embed.weight.t() if self.head is None else self.head(h)


def fixed_state(preset, lengths):
    """True when the model's state is the same at every requested length: no full or checkpoint
    attention (their caches grow with N), and every swa window W <= the shortest length (the ring
    is min(N, W) slots)."""
    for spec in preset["pattern"]:
        kind = spec["mixer"]
        if kind in ("attention", "checkpoint_attention"):
            return False
        if kind == "swa" and spec.get("window", 1024) > min(lengths):
            return False
    return True


def time_steps(step, model, token, pos, steps):
    """ms per step of `steps` greedy steps from position 0 (state zeroed first).  The step reads
    the whole state whatever the position (gpt-fast's mask over the longest context), so its time
    does not depend on the position and `steps` of them stand for a generation of any length."""
    for buffer in model.state_buffers():
        buffer.zero_()
    pos.zero_()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        token = step(token)  # the greedy next tokens, [B]
        pos += 1
    torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - start) / steps


def reduce_overhead_step(model, pos):
    """gpt-fast's recipe: torch.compile(mode="reduce-overhead", fullgraph=True), whose CUDA-graph
    trees record and replay the step; each step marked, its output cloned before it is fed back."""
    compiled = torch.compile(model, mode="reduce-overhead", fullgraph=True)

    def step(token):
        torch.compiler.cudagraph_mark_step_begin()
        return compiled(token, pos).argmax(-1).clone()  # a replay overwrites what it returned
    return step


def captured_step(model, pos, token, mode=None):
    """The same compiled step (default mode, fused kernels, no graph trees) captured by hand in one
    torch.cuda.CUDAGraph over static token / position buffers: what a user does when the graph
    trees decline to replay.  mode "max-autotune-no-cudagraphs" lets inductor time Triton
    templates against cuBLAS for the products (the skinny M = batch products of a decode step),
    at a longer compile."""
    compiled = torch.compile(model, fullgraph=True, mode=mode)
    static_token = token.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            compiled(static_token, pos)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        next_token = compiled(static_token, pos).argmax(-1)  # the argmax inside the graph too

    def step(token):
        static_token.copy_(token)
        graph.replay()
        return next_token
    return step


def profile_one_step(step, token):
    """One replayed step alone in the CUDA profiler's range (torch.cuda.profiler.start/stop), for
    `ncu --profile-from-start off` (bench/kernel_breakdown.sh, MIXLAB_BREAKDOWN_PHASE=decode):
    the kernels of one step after compilation and warm-up, beside mixlab's step of the same
    preset.  The position is where the warm-up left it; the peer's step reads its whole state at
    any position."""
    torch.cuda.synchronize()
    torch.cuda.profiler.start()
    step(token)
    torch.cuda.synchronize()
    torch.cuda.profiler.stop()


def formulations(preset, requested):
    """The step's attention formulations to run: --attention (default matmul, sdpa-efficient,
    sdpa-cudnn), or only "none" for a model without attention: compiling a Mamba stack once per
    formulation would time the same step three times."""
    if not any(spec["mixer"] in ATTENTION_KINDS for spec in preset["pattern"]):
        if requested:
            print(f"--attention {requested} ignored: {preset['name']} has no attention sublayer", flush=True)
        return ["none"]
    return (requested or "matmul,sdpa-efficient,sdpa-cudnn").split(",")


def compile_plans(preset, lengths, compile_once):
    """[(capacity, lengths its timing stands for, peer-name suffix)].  A model whose state is the
    same at every requested length (fixed_state) is compiled once at the longest: recompiling a
    74-layer Mamba stack per length (about a minute each) would time the same step again."""
    if compile_once == "auto" and fixed_state(preset, lengths):
        return [(max(lengths), lengths, "+fixed-state-timed-once")]
    return [(n, [n], "") for n in lengths]


def measure(preset, args, capacity, recipe, attention):
    """Builds, compiles and times one model: (ms per step, bytes a step reads) or None on failure."""
    import common  # needs triton: imported where a GPU run needs it, not by the CPU check
    backends = {"efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH,
                "cudnn": SDPBackend.CUDNN_ATTENTION} if SDPBackend else {}
    kind, _, backend = attention.partition("-")
    # the backend is chosen when the step is traced, inside this context
    allowed = sdpa_kernel([backends[backend]]) if backend else contextlib.nullcontext()
    torch.manual_seed(0)
    model = Decoder(preset, args.batch, capacity, kind, torch.bfloat16, "cuda").eval()
    print(f"{args.preset}: {model.parameter_count():,} parameters, capacity {capacity}", flush=True)
    token = torch.zeros(args.batch, dtype=torch.long, device="cuda")
    # The position lives on the device and advances in place (gpt-fast's input_pos): no
    # host-to-device copy per step.
    pos = torch.zeros(1, dtype=torch.long, device="cuda")
    try:
        with torch.no_grad(), allowed:
            step = (reduce_overhead_step(model, pos) if recipe == "reduce-overhead" else
                    captured_step(model, pos, token, args.compile_mode))
            time_steps(step, model, token, pos, 8)  # compile, record, warm up
            print(f"N={capacity} {recipe}+{attention}: compiled and warmed up", flush=True)
            if args.profile_range:
                profile_one_step(step, token)
            ms = time_steps(step, model, token, pos, args.steps)
    except Exception as error:  # a backend that refuses the shape or the mask
        print(f"N={capacity} {recipe}+{attention}: failed: {str(error)[:300]}", flush=True)
        common.forget_compiled()
        return None
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    state = sum(b.numel() * b.element_size() for b in model.state_buffers())
    del model, step
    common.forget_compiled()
    return ms, weights + state


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--preset", default="qwen2-340m")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lengths", default="2048,8192")
    parser.add_argument("--steps", type=int, default=256, help="steps timed per length and recipe")
    parser.add_argument("--recipes", default="cuda-graph", help="cuda-graph and/or reduce-overhead")
    parser.add_argument("--compile-mode", default=None, choices=[None, "max-autotune-no-cudagraphs"],
                        help="torch.compile mode of the cuda-graph recipe (default: inductor's default)")
    parser.add_argument("--attention", default=None,
                        help="the step's attention: matmul, sdpa-efficient, sdpa-math, sdpa-cudnn "
                             "(default: matmul,sdpa-efficient,sdpa-cudnn; none for a model without attention)")
    parser.add_argument("--profile-range", action="store_true",
                        help="run one step after the warm-up inside torch.cuda.profiler.start()/stop(), "
                             "for `ncu --profile-from-start off` (bench/kernel_breakdown.sh)")
    parser.add_argument("--compile-once", default="auto", choices=["auto", "off"],
                        help="auto: a model whose state does not depend on N is compiled and timed once, "
                             "its row written for every length; off: compile every length")
    parser.add_argument("--bandwidth-only", action="store_true",
                        help="write only the copy-bandwidth row (the floor of a table with no peer rows)")
    return parser.parse_args()


def main():
    args = parse_args()
    import common
    # The first run stayed at 31.6 ms per step, far from a graph replay: print why a compiled step
    # is not replayed as a CUDA graph ("skipping cudagraphs due to ...") and any recompilation.
    torch._logging.set_logs(perf_hints=True, recompiles=True)
    # Every capacity is its own static shape, as gpt-fast compiles it (no dynamic-shape kernels).
    torch._dynamo.config.automatic_dynamic_shapes = False
    preset = load_preset(args.preset)
    check_preset(preset)  # before any GPU work
    lengths = [int(x) for x in args.lengths.split(",")]
    attentions = formulations(preset, args.attention)
    kv_only = all(spec["mixer"] in ATTENTION_KINDS + ("mlp",) for spec in preset["pattern"])
    bandwidth = copy_bandwidth()
    print(f"copy bandwidth {bandwidth / 1e9:.0f} GB/s", flush=True)
    with open(args.out, "w") as out:
        out.write("peer,preset,batch,N,ms_per_step,tokens_per_s,floor_ms,bandwidth_gb_s\n")
        # The bandwidth first, as a row with no step time: a peer cut off while compiling still
        # gives the table the floor of this GPU (session 26 fell back to the H200's constant).
        common.write_row(out, f"copy-bandwidth,{args.preset},{args.batch},0,,,,{bandwidth / 1e9:.0f}")
        if args.bandwidth_only:
            return
        for capacity, served, suffix in compile_plans(preset, lengths, args.compile_once):
            for recipe in args.recipes.split(","):
                for attention in attentions:
                    result = measure(preset, args, capacity, recipe, attention)
                    if result is None:
                        continue
                    ms, bytes_read = result
                    label = "no-attention" if attention == "none" else attention
                    mode = "+max-autotune" if args.compile_mode and recipe == "cuda-graph" else ""
                    name = f"torch.compile{mode}+{recipe}+static-{'kv' if kv_only else 'state'}+{label}{suffix}"
                    for n in served:
                        common.write_row(out, f"{name},{args.preset},{args.batch},{n},{ms:.4f},"
                                              f"{1000 * args.batch / ms:.1f},{1000 * bytes_read / bandwidth:.4f},"
                                              f"{bandwidth / 1e9:.0f}")


if __name__ == "__main__":
    main()
