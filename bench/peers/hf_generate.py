"""The SCOUT authors' measurement method as a peer of mixlab's decode and prefill rows (issue 18):
the baselines of the paper built from config at random init with Hugging Face `transformers` and
timed with `generate()`, as the authors' eval/latency.py (decode, §4.4) and
eval/latency_prefill.py (prefill, §4.5) do.

    python3 bench/peers/hf_generate.py OUT.csv --presets qwen2-340m,qwen2-alternate-swa-366m,mamba-546m \
        --phase decode --batch 16 --lengths 2048,4096
    python3 bench/peers/hf_generate.py OUT.csv --presets qwen2-340m --phase prefill --batch 1,2,4 \
        --lengths 2048,4096,8192,16384

Models, from mixlab's presets (experiments/presets/*.json), random init, bf16:
    [attention, mlp]               Qwen2ForCausalLM (Qwen2's q/k/v biases included, as HF builds it)
    [swa, mlp, attention, mlp]     the same with layer_types alternating sliding_attention (the preset's
                                   window) and full_attention, sliding first
    [mamba]                        MambaForCausalLM (its CUDA fast path only if mamba_ssm and
                                   causal_conv1d are installed: the `notes` column says which ran)
SCOUT itself has no modeling code in `transformers` (and its authors' is not available here):
SCOUT presets are refused; mixlab's SCOUT rows are compared with these and with mixlab's own baselines.

decode: prompt of one token per sequence, generate(max_new_tokens = min_new_tokens = N, greedy,
use_cache); tokens/s = batch * N / wall time; peak = torch.cuda.max_memory_allocated.  The authors
time the first call (no warm-up); each row is timed both ways: `cold` (the first generate() of the
model) and `warm` (after a 16-token generate()).
prefill: a random prompt of N tokens, 10 new tokens; wall time, warm (one warm-up call), median of 3.
Out of memory: a row with empty figures.  Rows already in OUT are not measured again (resumes).
A decode row whose generations would not finish within --row-seconds (estimated from the warm rate
at a shorter length in OUT) is written as `too_long` with the estimate, instead of starting a
generation that the device call's time limit would kill; --timings cold and --timings warm in two
calls halve a row.  A (preset, phase, batch, N) resumes per timing.
Rows: method,preset,phase,batch,N,timing,seconds,tokens_per_s,peak_mb,notes
"""
import argparse
import json
import os
import statistics
import time

import torch

PRESETS = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "presets")


def hf_model(name):
    """The preset as a transformers model (random init, bf16, on the GPU) and a note on it."""
    import transformers
    preset = json.load(open(os.path.join(PRESETS, name + ".json")))
    mixers = [sub["mixer"] for sub in preset["pattern"]]
    common = dict(vocab_size=preset["vocab_size"], hidden_size=preset["d_model"],
                  tie_word_embeddings=preset.get("tie_embeddings", True), initializer_range=preset.get("init_std", 0.02))
    if mixers == ["mamba"]:
        sub = preset["pattern"][0]
        config = transformers.MambaConfig(num_hidden_layers=preset["n_layers"], state_size=sub.get("d_state", 16),
                                          expand=sub.get("expand", 2), conv_kernel=sub.get("d_conv", 4),
                                          time_step_rank=sub.get("dt_rank", "auto") or "auto",
                                          layer_norm_epsilon=preset.get("norm_eps", 1e-6), **common)
        from transformers.models.mamba import modeling_mamba
        note = "mamba fast path" if getattr(modeling_mamba, "is_fast_path_available", False) else "mamba slow path (no mamba_ssm)"
        model = transformers.MambaForCausalLM(config)
    elif mixers in (["attention", "mlp"], ["swa", "mlp", "attention", "mlp"]):
        attention = next(sub for sub in preset["pattern"] if sub["mixer"] in ("attention", "swa"))
        hidden = next(sub for sub in preset["pattern"] if sub["mixer"] == "mlp")["hidden"]
        layers = preset["n_layers"] * (len(mixers) // 2)
        kwargs = dict(num_hidden_layers=layers, num_attention_heads=preset["n_heads"],
                      num_key_value_heads=preset["n_heads"], intermediate_size=hidden,
                      rope_theta=attention.get("rope_theta", 1e4), rms_norm_eps=preset.get("norm_eps", 1e-6),
                      max_position_embeddings=65536, **common)
        note = "qwen2"
        if mixers[0] == "swa":
            window = preset["pattern"][0].get("window", 1024)
            kwargs.update(use_sliding_window=True, sliding_window=window,
                          layer_types=["sliding_attention", "full_attention"] * preset["n_layers"])
            note = f"qwen2; alternating sliding window {window}"  # no comma: the notes are one CSV field
        model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**kwargs))
    else:
        raise SystemExit(f"hf_generate.py: no transformers model for {name} (pattern {mixers})")
    return model.to("cuda", torch.bfloat16).eval(), note


def generate(model, prompt, new_tokens):
    """Wall seconds of one greedy generate() of exactly `new_tokens` tokens."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    model.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                   use_cache=True, pad_token_id=0, attention_mask=torch.ones_like(prompt))
    torch.cuda.synchronize()
    return time.perf_counter() - start


def rows_for(model, phase, batch, n, timings=("cold", "warm")):
    """One or two CSV rows for (phase, batch, N); decode rows for each of `timings`."""
    vocab = model.config.vocab_size
    if phase == "decode":
        prompt = torch.zeros(batch, 1, dtype=torch.long, device="cuda")
        out = []
        for timing in timings:
            if timing == "warm":
                generate(model, prompt, 16)
            torch.cuda.reset_peak_memory_stats()
            seconds = generate(model, prompt, n)
            out.append((timing, seconds, batch * n / seconds, torch.cuda.max_memory_allocated() / 2**20))
        return out
    prompt = torch.randint(0, vocab, (batch, n), device="cuda")
    generate(model, prompt, 10)
    torch.cuda.reset_peak_memory_stats()
    seconds = statistics.median(generate(model, prompt, 10) for _ in range(3))
    return [("warm, median of 3", seconds, batch * (n + 10) / seconds, torch.cuda.max_memory_allocated() / 2**20)]


def read_rows(path):
    """OUT's rows so far: {(preset, phase, batch, N): {timing: seconds or None}} (too_long rows left
    out: a later call with more --row-seconds may run them)."""
    rows = {}
    if os.path.exists(path):
        for line in open(path).read().splitlines()[1:]:
            fields = line.split(",")
            if fields[5] != "too_long":
                key = (fields[1], fields[2], int(fields[3]), int(fields[4]))
                rows.setdefault(key, {})[fields[5]] = float(fields[6]) if fields[6] else None
    return rows


def estimated_seconds(measured, n, timings):
    """A lower bound on the decode row at N: len(timings) generations of N steps at the warm rate of
    the longest shorter length measured, plus the cold call's extra seconds there; None if unknown."""
    shorter = [m for m, row in measured.items() if m < n and row.get("warm")]
    if not shorter:
        return None
    m = max(shorter)
    warm = measured[m]["warm"]
    cold_extra = max(0.0, (measured[m].get("cold") or warm) - warm) if "cold" in timings else 0.0
    return len(timings) * n * warm / m + cold_extra


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--presets", default="qwen2-340m,qwen2-alternate-swa-366m,mamba-546m")
    parser.add_argument("--phase", choices=["decode", "prefill"], default="decode")
    parser.add_argument("--batch", default="16", help="comma-separated batch sizes")
    parser.add_argument("--lengths", default="2048,4096,8192,16384,32768")
    parser.add_argument("--timings", default="cold,warm",
                        help="decode: cold (the model's first generate(), as the authors time it), warm, or both; "
                             "one at a time fits a longer generation into a device call")
    parser.add_argument("--row-seconds", type=float, default=540.0,
                        help="longest a decode row (its generations) may take; longer ones are not started")
    args = parser.parse_args()
    timings = tuple(t for t in args.timings.split(",") if t)
    if not timings or any(t not in ("cold", "warm") for t in timings):
        parser.error(f"--timings {args.timings}: give cold, warm or cold,warm")
    wanted = timings if args.phase == "decode" else ("warm, median of 3",)
    rows = read_rows(args.out)
    batches = [int(b) for b in args.batch.split(",")]
    lengths = [int(x) for x in args.lengths.split(",")]

    def missing(name, batch, n):  # the timings still to measure at (name, batch, N)
        have = rows.get((name, args.phase, batch, n), {})
        return () if "oom" in have else tuple(t for t in wanted if t not in have)

    new_file = not os.path.exists(args.out)
    with open(args.out, "a") as out:
        def write(line):
            print(line, flush=True)
            out.write(line + "\n")
            out.flush()

        if new_file:
            out.write("method,preset,phase,batch,N,timing,seconds,tokens_per_s,peak_mb,notes\n")
        for name in args.presets.split(","):
            if not any(missing(name, b, n) for b in batches for n in lengths):
                continue
            torch.manual_seed(0)
            model, note = hf_model(name)
            for batch in batches:
                measured = {n: row for (p, ph, b, n), row in rows.items() if (p, ph, b) == (name, args.phase, batch)}
                for n in lengths:
                    todo = missing(name, batch, n)
                    if not todo:
                        continue
                    estimate = estimated_seconds(measured, n, todo)
                    if args.phase == "decode" and estimate and estimate > args.row_seconds:
                        write(f"hf-generate,{name},{args.phase},{batch},{n},too_long,,,,"
                              f"{note}; not started: about {estimate:.0f} s > --row-seconds {args.row_seconds:.0f}")
                        continue
                    try:
                        with torch.no_grad():
                            results = rows_for(model, args.phase, batch, n, todo)
                        measured.setdefault(n, {}).update({timing: s for timing, s, _, _ in results})
                        for timing, s, tps, mb in results:
                            write(f"hf-generate,{name},{args.phase},{batch},{n},{timing},{s:.4f},{tps:.1f},{mb:.0f},{note}")
                    except torch.OutOfMemoryError:
                        torch.cuda.empty_cache()
                        write(f"hf-generate,{name},{args.phase},{batch},{n},oom,,,,{note}")
            del model
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
