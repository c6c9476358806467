"""CPU check of decode_peer.py's models (a dev check, no GPU, no compile; any PyTorch >= 1.13):

1. The parameter count of the peer built from each real preset equals a formula written from the
   mixers' equations, and rounds to the count the preset's description states.
2. Stepping the static decoder token by token from position 0 (float64) gives the logits of a
   separately written full-sequence forward of the same weights: causal attention, a band of W
   keys for swa, SCOUT's checkpoint mask for checkpoint_attention, a plain sequential scan for
   Mamba.  Contexts longer than W and S, so rings wrap and segments close.  For the masked kinds
   the same logits are also compared with wrong masks (full causal; one off: swa W+1 keys,
   checkpoints at mS), which must differ: the check would see a wrong mask.

    python3 bench/peers/decode_peer_check.py
"""
import math
import os
import re
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import decode_peer as peer  # noqa: E402

TOLERANCE = 1e-10


# 1. Parameter counts ----------------------------------------------------------------------------

def formula_count(preset):
    """Parameters from the equations: embedding V·d (twice when untied), a final norm d, and per
    sublayer its norm d plus attention 4d² (q, k, v, o), SwiGLU 3·d·hidden, Mamba
    3·E·d + E·(K + 2R + 3n + 3) (in_proj 2Ed, conv EK + E, x_proj E(R + 2n), dt_proj RE + E,
    A_log En, D E, out_proj Ed)."""
    d, vocab = preset["d_model"], preset["vocab_size"]
    per_unit = 0
    for spec in preset["pattern"]:
        per_unit += d
        kind = spec["mixer"]
        if kind in ("attention", "swa", "checkpoint_attention"):
            per_unit += 4 * d * d
        elif kind == "mlp":
            hidden = spec.get("hidden") or 8 * math.ceil(math.ceil(spec.get("expand", 8 / 3) * d) / 8)
            per_unit += 3 * d * hidden
        elif kind == "mamba":
            E, n, K = int(spec.get("expand", 2) * d), spec.get("d_state", 16), spec.get("d_conv", 4)
            R = spec.get("dt_rank") or math.ceil(d / 16)
            per_unit += 3 * E * d + E * (K + 2 * R + 3 * n + 3)
        else:
            raise ValueError(kind)
    return vocab * d * (1 if preset["tie_embeddings"] else 2) + d + preset["n_layers"] * per_unit


def stated_count(preset):
    """The count the description states ("469.6M parameters"), as text."""
    return re.search(r"([\d.]+M) parameters", preset["description"]).group(1)


def check_counts():
    ok = True
    for name in ("qwen2-340m", "scout-swa-470m", "scout-mamba-430m", "mamba-546m"):
        preset = peer.load_preset(name)
        model = peer.Decoder(preset, 1, 16, "matmul", torch.float32, "cpu")
        built, formula, stated = model.parameter_count(), formula_count(preset), stated_count(preset)
        decimals = len(stated.split(".")[1]) - 1 if "." in stated else 0
        rounds = f"{built / 1e6:.{decimals}f}M" == stated
        print(f"{name:18s} peer {built:,}  formula {formula:,}  stated {stated}  "
              f"{'OK' if built == formula and rounds else 'MISMATCH'}")
        ok &= built == formula and rounds
        del model
    return ok


# 2. Step against a full-sequence forward --------------------------------------------------------

def rms(x, weight, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * weight


def rotary(x, theta):
    """x: [B, H, T, dh] at positions 0 .. T-1; pairs (i, i + dh/2) rotated by the angle t·θ^(-2i/dh)."""
    T, dh = x.shape[2], x.shape[3]
    angle = torch.arange(T, dtype=torch.float64)[:, None] * theta ** (-2.0 * torch.arange(dh // 2, dtype=torch.float64) / dh)
    x1, x2 = x[..., : dh // 2], x[..., dh // 2:]
    return torch.cat([x1 * angle.cos() - x2 * angle.sin(), x2 * angle.cos() + x1 * angle.sin()], -1)


def mask_of(spec, T, variant=None):
    """[T (query), T (key)] bool: which keys j a query t sees.  variant "full": causal for every
    kind; "shifted": a wrong mask one off (swa W+1 keys, checkpoints at mS instead of mS+S-1)."""
    t, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    if variant == "full" or spec["mixer"] == "attention":
        return j <= t
    if spec["mixer"] == "swa":
        return (j <= t) & (j > t - spec["window"] - int(variant == "shifted"))
    S = spec["segment_size"]  # SCOUT: itself, and the checkpoints mS+S-1 before it
    return (j == t) | ((j % S == (0 if variant == "shifted" else S - 1)) & (j < t))


def attention_forward(m, x, spec, variant):
    B, T, d = x.shape
    H = m.heads
    q, k, v = (x @ m.qkv.weight.t()).view(B, T, 3, H, d // H).permute(2, 0, 3, 1, 4)  # [B, H, T, dh]
    theta = spec.get("rope_theta", 1e4)
    scores = rotary(q, theta) @ rotary(k, theta).transpose(-1, -2) / math.sqrt(d // H)
    weights = scores.masked_fill(~mask_of(spec, T, variant), float("-inf")).softmax(-1)
    return (weights @ v).transpose(1, 2).reshape(B, T, d) @ m.o.weight.t()


def mamba_forward(m, x, spec):
    """The recurrence written plainly, one position after another, from the whole sequence."""
    B, T, d = x.shape
    E, n = int(spec.get("expand", 2) * d), spec["d_state"]
    R, K = spec["dt_rank"], spec["d_conv"]
    xz = x @ m.in_proj.weight.t()
    xin, z = xz[..., :E], xz[..., E:]
    conv = F.conv1d(xin.transpose(1, 2), m.conv.weight, m.conv.bias, padding=K - 1, groups=E)[..., :T]
    u = F.silu(conv).transpose(1, 2)  # [B, T, E]
    dbc = u @ m.x_proj.weight.t()
    delta, Bm, Cm = dbc[..., :R], dbc[..., R:R + n], dbc[..., R + n:]
    dt = torch.log1p(torch.exp(delta @ m.dt_proj.weight.t() + m.dt_proj.bias))  # softplus, [B, T, E]
    A = -torch.exp(m.A_log)
    h = torch.zeros(B, E, n, dtype=x.dtype)
    ys = []
    for t in range(T):
        h = torch.exp(dt[:, t, :, None] * A) * h + (dt[:, t] * u[:, t])[:, :, None] * Bm[:, t, None, :]
        ys.append((h * Cm[:, t, None, :]).sum(-1) + m.D * u[:, t])
    return (torch.stack(ys, 1) * F.silu(z)) @ m.out_proj.weight.t()


def mlp_forward(m, x):
    hidden = m.down.weight.shape[1]
    gate, up = m.gate_up.weight[:hidden], m.gate_up.weight[hidden:]
    return (F.silu(x @ gate.t()) * (x @ up.t())) @ m.down.weight.t()


def full_forward(model, preset, tokens, variant=None):
    """Logits [B, T, V] of the whole sequence at once (variant: a wrong mask, see mask_of)."""
    eps = preset["norm_eps"]
    specs = [spec for _ in range(preset["n_layers"]) for spec in preset["pattern"]]
    h = model.embed.weight[tokens]
    for block, spec in zip(model.blocks, specs):
        x = rms(h, block.norm.weight, eps)
        if spec["mixer"] == "mlp":
            h = h + mlp_forward(block.mixer, x)
        elif spec["mixer"] == "mamba":
            h = h + mamba_forward(block.mixer, x, spec)
        else:
            h = h + attention_forward(block.mixer, x, spec, variant)
    h = rms(h, model.norm.weight, eps)
    return h @ (model.embed.weight if model.head is None else model.head.weight).t()


def stepped(model, tokens):
    pos = torch.zeros(1, dtype=torch.long)
    logits = []
    for t in range(tokens.shape[1]):
        pos.fill_(t)
        logits.append(model(tokens[:, t], pos))
    return torch.stack(logits, 1)


def tiny(name, pattern, layers, tied=True):
    return {"name": name, "description": "", "vocab_size": 41, "d_model": 16, "n_heads": 2, "n_layers": layers,
            "pattern": pattern, "tie_embeddings": tied, "norm_eps": 1e-6, "init_std": 0.3}


MAMBA = {"mixer": "mamba", "d_state": 4, "d_conv": 4, "expand": 2, "dt_rank": 3}
CASES = [  # (config, capacity)
    (tiny("attention+mlp", [{"mixer": "attention", "rope_theta": 100.0}, {"mixer": "mlp", "hidden": 24}], 2), 20),
    (tiny("scout-swa W4 S3", [{"mixer": "swa", "window": 4, "rope_theta": 100.0}, {"mixer": "mlp", "hidden": 24},
                              {"mixer": "checkpoint_attention", "segment_size": 3, "rope_theta": 1e4},
                              {"mixer": "mlp"}], 2), 20),
    (tiny("scout-swa W4 S3 cap24", [{"mixer": "swa", "window": 4}, {"mixer": "mlp"},
                                    {"mixer": "checkpoint_attention", "segment_size": 3}, {"mixer": "mlp"}], 1), 24),
    (tiny("swa W32 > capacity", [{"mixer": "swa", "window": 32, "rope_theta": 100.0}, {"mixer": "mlp"}], 2), 20),
    (tiny("scout-mamba S3", [MAMBA, {"mixer": "mlp", "hidden": 24},
                             {"mixer": "checkpoint_attention", "segment_size": 3, "rope_theta": 100.0},
                             {"mixer": "mlp", "hidden": 24}], 2), 20),
    (tiny("mamba, untied", [MAMBA], 3, tied=False), 20),
]


def check_state_shapes(model, preset, batch, capacity):
    """The buffers docs/decode.md lists, per sublayer kind."""
    specs = [spec for _ in range(preset["n_layers"]) for spec in preset["pattern"]]
    d, H = preset["d_model"], preset["n_heads"]
    for block, spec in zip(model.blocks, specs):
        m, kind = block.mixer, spec["mixer"]
        if kind in ("attention", "swa", "checkpoint_attention"):
            slots = {"attention": capacity, "swa": min(capacity, spec.get("window", 1024)),
                     "checkpoint_attention": -(-capacity // spec.get("segment_size", 10))}[kind]
            assert m.k_cache.shape == m.v_cache.shape == (batch, H, slots, d // H), (kind, m.k_cache.shape)
        elif kind == "mamba":
            E = int(spec["expand"] * d)
            assert m.conv_state.shape == (batch, E, spec["d_conv"] - 1)
            assert m.ssm_state.shape == (batch, E, spec["d_state"]) and m.ssm_state.dtype == torch.float64


def check_steps():
    ok, T, batch = True, 20, 2
    for preset, capacity in CASES:
        torch.manual_seed(0)
        model = peer.Decoder(preset, batch, capacity, "matmul", torch.float64, "cpu")
        check_state_shapes(model, preset, batch, capacity)
        tokens = torch.randint(0, preset["vocab_size"], (batch, T))
        with torch.no_grad():
            step_logits = stepped(model, tokens)
            reference = full_forward(model, preset, tokens)
            diff = (step_logits - reference).abs().max().item()
            line = f"{preset['name']:24s} capacity {capacity}, {T} positions: max |step - full| = {diff:.2e}"
            good = diff < TOLERANCE
            masked = any(s["mixer"] in ("swa", "checkpoint_attention") for s in preset["pattern"])
            if masked:  # the reference's masks matter: a wrong one gives other logits
                for variant in ("full", "shifted"):
                    wrong = (step_logits - full_forward(model, preset, tokens, variant)).abs().max().item()
                    line += f"; against {variant} masks {wrong:.2e}"
                    good &= wrong > 1e3 * TOLERANCE or preset["name"].startswith("swa W32")
        print(line, "OK" if good else "MISMATCH")
        ok &= good
    return ok


def check_options():
    """Which models are compiled once; a sublayer the peer does not know stops the run."""
    load = peer.load_preset
    lengths = [2048, 8192, 32768]
    once = {name: peer.fixed_state(load(name), lengths)
            for name in ("qwen2-340m", "scout-swa-470m", "scout-mamba-430m", "mamba-546m")}
    print("compiled once at 2048,8192,32768:", once)
    ok = once == {"qwen2-340m": False, "scout-swa-470m": False, "scout-mamba-430m": False, "mamba-546m": True}
    ok &= peer.formulations(load("mamba-546m"), None) == ["none"]
    ok &= peer.formulations(load("scout-swa-470m"), "matmul") == ["matmul"]
    try:
        peer.check_preset(load("dtrnet-360m"))
        ok = False
    except SystemExit as error:
        print("dtrnet-360m refused:", error)
    return ok


def main():
    ok = check_options()
    ok &= check_steps()
    ok &= check_counts()
    print("all OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
