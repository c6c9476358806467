"""Decode peer of `mixlab sweep` decode rows (issue 13): a full-attention preset written as
gpt-fast writes it (a static KV cache of the longest context, the position a device tensor, the
step compiled with torch.compile and replayed as one CUDA graph: captured by hand (default) or by
mode="reduce-overhead"), greedy decoding from a one-token prompt, bf16, random init.  The step's
attention over the cache is written several ways (--attention; the fastest is the peer): SDPA's
default dispatch picks cuDNN for this masked single-query product, which the first valid run
(2026-12-04) measured at 31 ms per step at 2k, 20x mixlab's.

    python3 bench/peers/decode_peer.py OUT.csv --preset qwen2-340m --batch 16 --lengths 2048,8192

Same architecture as mixlab's preset (experiments/presets/*.json): pre-norm RMSNorm, RoPE
(rotate-half, the preset's theta) on q and k, SwiGLU MLP of the preset's hidden size, tied
embedding head, no biases.  The step reads the whole cache (gpt-fast's mask over the longest
context); mixlab's reads a power-of-two span above the position (harness/static_decoder.h).

Also measured here, for the floor of a step: the copy bandwidth of this GPU (a 4 GiB
device-to-device copy, bytes read + written over time), and per row the bytes a step must read
(weights + the KV cache at the end of the generation).
Rows: peer,preset,batch,N,ms_per_step,tokens_per_s,floor_ms,bandwidth_gb_s
"""
import argparse
import contextlib
import json
import os
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import common

PRESETS = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "presets")


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


class Decoder(torch.nn.Module):
    """The preset's [attention, mlp] stack with a static KV cache of `capacity` tokens."""

    def __init__(self, preset, batch, capacity, attention="matmul"):
        super().__init__()
        self.attention = attention
        d, self.heads = preset["d_model"], preset["n_heads"]
        self.dh, self.layers = d // self.heads, preset["n_layers"]
        mixers = [sub["mixer"] for sub in preset["pattern"]]
        if mixers != ["attention", "mlp"]:
            raise SystemExit(f"decode_peer.py: only [attention, mlp] presets, got {mixers}")
        hidden = preset["pattern"][1].get("hidden")
        self.embed = torch.nn.Embedding(preset["vocab_size"], d)
        self.qkv = torch.nn.ModuleList([torch.nn.Linear(d, 3 * d, bias=False) for _ in range(self.layers)])
        self.o = torch.nn.ModuleList([torch.nn.Linear(d, d, bias=False) for _ in range(self.layers)])
        self.gate_up = torch.nn.ModuleList([torch.nn.Linear(d, 2 * hidden, bias=False) for _ in range(self.layers)])
        self.down = torch.nn.ModuleList([torch.nn.Linear(hidden, d, bias=False) for _ in range(self.layers)])
        self.norms = torch.nn.ModuleList([torch.nn.RMSNorm(d, eps=preset["norm_eps"]) for _ in range(2 * self.layers + 1)])
        for p in self.parameters():
            torch.nn.init.normal_(p, std=0.02) if p.dim() > 1 else None
        theta = preset["pattern"][0].get("rope_theta", 1e4)
        inv = theta ** (-torch.arange(0, self.dh, 2, dtype=torch.float64) / self.dh)
        angles = torch.arange(capacity, dtype=torch.float64)[:, None] * inv[None, :]
        both = torch.cat([angles, angles], -1)
        self.register_buffer("cos", both.cos().to(torch.bfloat16))  # [capacity, dh]
        self.register_buffer("sin", both.sin().to(torch.bfloat16))
        # One buffer per layer and per k / v, as gpt-fast's KVCache modules hold them: a step
        # writes one slot of each in place.  (The first version sliced one [layers, ...] buffer per
        # layer; inductor then copied the whole buffer at every layer's write, 31 ms per step at
        # 2k, 2026-12-04.)
        shape = (batch, self.heads, capacity, self.dh)
        for i in range(self.layers):
            self.register_buffer(f"k_cache{i}", torch.zeros(shape, dtype=torch.bfloat16))
            self.register_buffer(f"v_cache{i}", torch.zeros(shape, dtype=torch.bfloat16))
        self.register_buffer("slots", torch.arange(capacity))

    def attend(self, q, k, v, visible):
        """q: [B, H, 1, dh]; k, v: [B, H, capacity, dh]; visible: [1, capacity] -> [B, H, 1, dh].
        "sdpa": F.scaled_dot_product_attention with the mask, under the backends `sdpa_backends`
        allows; "matmul": softmax(q·kᵀ/√dh, masked) · v written out, which inductor fuses."""
        if self.attention == "sdpa":
            return F.scaled_dot_product_attention(q, k, v, attn_mask=visible)
        scores = (q @ k.transpose(-1, -2)).float() * self.dh ** -0.5  # [B, H, 1, capacity]
        scores = scores.masked_fill(~visible, float("-inf"))
        return scores.softmax(-1).to(v.dtype) @ v

    @staticmethod
    def rope(x, cos, sin):
        half = x.shape[-1] // 2
        return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin

    def forward(self, token, pos):  # token: [B], pos: [1] -> logits [B, V]
        b = token.shape[0]
        h = self.embed(token)
        cos, sin = self.cos[pos], self.sin[pos]  # [1, dh]
        visible = (self.slots <= pos)[None, :]  # [1, capacity]
        for i in range(self.layers):
            q, k, v = self.qkv[i](self.norms[2 * i](h)).view(b, 3, self.heads, 1, self.dh).unbind(1)
            q, k = self.rope(q, cos, sin), self.rope(k, cos, sin)
            k_cache, v_cache = getattr(self, f"k_cache{i}"), getattr(self, f"v_cache{i}")
            k_cache[:, :, pos] = k  # gpt-fast's KVCache.update: index_put_ at the position
            v_cache[:, :, pos] = v
            out = self.attend(q, k_cache, v_cache, visible)
            h = h + self.o[i](out.reshape(b, -1))
            gate, up = self.gate_up[i](self.norms[2 * i + 1](h)).chunk(2, -1)
            h = h + self.down[i](F.silu(gate) * up)
        return self.norms[-1](h) @ self.embed.weight.t()


def time_steps(step, model, token, pos, steps):
    """ms per step of `steps` greedy steps from position 0 (caches zeroed first).  The step reads
    the whole cache whatever the position (gpt-fast's mask over the longest context), so its time
    does not depend on the position and `steps` of them stand for a generation of any length."""
    for name, buffer in model.named_buffers():
        if "_cache" in name:
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


def captured_step(model, pos, token):
    """The same compiled step (default mode, fused kernels, no graph trees) captured by hand in one
    torch.cuda.CUDAGraph over static token / position buffers: what a user does when the graph
    trees decline to replay."""
    compiled = torch.compile(model, fullgraph=True)
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--preset", default="qwen2-340m")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lengths", default="2048,8192")
    parser.add_argument("--steps", type=int, default=256, help="steps timed per length and recipe")
    parser.add_argument("--recipes", default="cuda-graph", help="cuda-graph and/or reduce-overhead")
    parser.add_argument("--attention", default="matmul,sdpa-efficient,sdpa-cudnn",
                        help="the step's attention: matmul, sdpa-efficient, sdpa-math, sdpa-cudnn")
    args = parser.parse_args()
    # The first run stayed at 31.6 ms per step, far from a graph replay: print why a compiled step
    # is not replayed as a CUDA graph ("skipping cudagraphs due to ...") and any recompilation.
    torch._logging.set_logs(perf_hints=True, recompiles=True)
    # Every capacity is its own static shape, as gpt-fast compiles it (no dynamic-shape kernels).
    torch._dynamo.config.automatic_dynamic_shapes = False
    preset = json.load(open(os.path.join(PRESETS, args.preset + ".json")))
    bandwidth = copy_bandwidth()
    print(f"copy bandwidth {bandwidth / 1e9:.0f} GB/s", flush=True)
    backends = {"efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH,
                "cudnn": SDPBackend.CUDNN_ATTENTION}
    with open(args.out, "w") as out:
        out.write("peer,preset,batch,N,ms_per_step,tokens_per_s,floor_ms,bandwidth_gb_s\n")
        for n in [int(x) for x in args.lengths.split(",")]:
            for recipe in args.recipes.split(","):
                for attention in args.attention.split(","):
                    kind, _, backend = attention.partition("-")
                    # the backend is chosen when the step is traced, inside this context
                    allowed = sdpa_kernel([backends[backend]]) if backend else contextlib.nullcontext()
                    torch.manual_seed(0)
                    model = Decoder(preset, args.batch, n, kind).cuda().to(torch.bfloat16).eval()
                    token = torch.zeros(args.batch, dtype=torch.long, device="cuda")
                    # The position lives on the device and advances in place (gpt-fast's input_pos):
                    # no host-to-device copy per step.
                    pos = torch.zeros(1, dtype=torch.long, device="cuda")
                    name = f"torch.compile+{recipe}+static-kv+{attention}"
                    try:
                        with torch.no_grad(), allowed:
                            step = (reduce_overhead_step(model, pos) if recipe == "reduce-overhead" else
                                    captured_step(model, pos, token))
                            time_steps(step, model, token, pos, 8)  # compile, record, warm up
                            print(f"N={n} {name}: compiled and warmed up", flush=True)
                            ms = time_steps(step, model, token, pos, args.steps)
                    except Exception as error:  # a backend that refuses the shape or the mask
                        print(f"N={n} {name}: failed: {str(error)[:300]}", flush=True)
                        common.forget_compiled()
                        continue
                    weights = sum(p.numel() * p.element_size() for p in model.parameters())
                    cache = sum(b.numel() * b.element_size() for name, b in model.named_buffers() if "_cache" in name)
                    row = (f"{name},{args.preset},{args.batch},{n},{ms:.4f},{1000 * args.batch / ms:.1f},"
                           f"{1000 * (weights + cache) / bandwidth:.4f},{bandwidth / 1e9:.0f}")
                    common.write_row(out, row)
                    del model, step
                    common.forget_compiled()


if __name__ == "__main__":
    main()
