#!/usr/bin/env python3
"""Estimate the device time of a zoology-mqar spec from analytic FLOPs (standard library only).

    python3 docs/results/zoology-mqar/cost_estimate.py FLOPS_DB SPEC [--gpu-tflops R] [--step-ms T] [--workers K]

FLOPS_DB: the database of experiments/paper/zoology-mqar-flops.json (forward FLOPs of one
sequence, cost(), for every model, width and length).  For every point of SPEC

    steps  = epochs * floor(examples / batch_size)         (no early stop: an upper bound)
    f      = flops(model, d_model, seq_len) - 2 L d V (1 - K / L)   (training runs the LM head only
             at the K asked positions of L; cost() counts it at all L)
    F      = steps * 3 * batch_size * f

and the device time is estimated as  max(sum F / R,  sum steps * T / K):  the FLOPs at an
effective rate R, or, for models too small to be limited by arithmetic, T seconds of kernel
launches per optimiser step in each of K worker processes.  R and T are assumptions, stated in
docs/results/zoology-mqar/README.md with the CPU measurement they are compared against.
"""
import argparse
import itertools
import json
import sqlite3


def read_spec(path):
    text = "\n".join(line for line in open(path) if not line.lstrip().startswith("//"))
    return json.loads(text)


def set_dotted(config, dotted, value):
    parts = dotted.split(".")
    for part in parts[:-1]:
        config = config.setdefault(part, {})
    config[parts[-1]] = value


def merge(base, overlay):
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = json.loads(json.dumps(value))


def expand(spec):
    """points x zip rows x grid combinations, as docs/sweeps.md defines them."""
    zip_items = list(spec.get("zip", {}).items())
    zip_rows = list(zip(*[values for _, values in zip_items])) if zip_items else [()]
    grid_items = list(spec.get("grid", {}).items())
    for point in spec.get("points", [{}]):
        for row in zip_rows:
            for combination in itertools.product(*[values for _, values in grid_items]):
                config = json.loads(json.dumps(spec["base"]))
                merge(config, point)
                for (path, _), value in list(zip(zip_items, row)) + list(zip(grid_items, combination)):
                    set_dotted(config, path, value)
                yield config


def same_model(resolved, model):
    """The resolved model (every default written out) is the spec's model at its width."""
    if resolved.get("name") != model.get("name") or resolved["d_model"] != model["d_model"]:
        return False
    if len(resolved["pattern"]) != len(model["pattern"]) or resolved["n_layers"] != model["n_layers"]:
        return False
    for have, want in zip(resolved["pattern"], model["pattern"]):
        want = {"mixer": want} if isinstance(want, str) else want
        if any(have.get(key) != value for key, value in want.items()):
            return False
    return True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("flops_db")
    parser.add_argument("spec")
    parser.add_argument("--gpu-tflops", type=float, default=100.0)
    parser.add_argument("--step-ms", type=float, default=4.0)
    parser.add_argument("--workers", type=int, default=12)
    args = parser.parse_args()

    measured = []  # (resolved model, seq_len, forward FLOPs of one sequence)
    database = sqlite3.connect(args.flops_db)
    for config_json, seq_len, value in database.execute(
            "SELECT p.config_json, m.seq_len, m.flops FROM measurements m JOIN points p USING (point_id) "
            "WHERE m.phase = 'forward' AND m.flops IS NOT NULL"):
        measured.append((json.loads(config_json)["model"], seq_len, value))
    # The CPU's rate on a forward+backward of one sequence (FLOPs 3x forward, cost()).
    rates = sorted(flops / (ms / 1e3) for flops, ms in database.execute(
        "SELECT flops, median_ms FROM measurements WHERE phase = 'forward_backward' AND status = 'ok' "
        "AND median_ms > 0"))
    cpu_rate = rates[len(rates) // 2] if rates else float("nan")

    total_flops = total_steps = 0.0
    points = 0
    by_setting = {}
    for config in expand(read_spec(args.spec)):
        model, train = config["model"], config["train"]
        steps = train["epochs"] * (train["data"]["examples"] // train["batch_size"])
        found = [value for resolved, seq_len, value in measured
                 if seq_len == train["seq_len"] and same_model(resolved, model)]
        if not found:
            raise SystemExit(f"no FLOPs for {model.get('name')} d={model['d_model']} at {train['seq_len']}")
        head_skipped = 2 * train["seq_len"] * model["d_model"] * model["vocab_size"] * (
            1 - train["data"]["num_kv_pairs"] / train["seq_len"])
        per_sequence = found[0] - head_skipped
        point_flops = steps * 3 * train["batch_size"] * per_sequence
        total_flops += point_flops
        total_steps += steps
        points += 1
        key = (train["seq_len"], model["d_model"])
        by_setting[key] = by_setting.get(key, 0.0) + point_flops
    compute_s = total_flops / (args.gpu_tflops * 1e12)
    launch_s = total_steps * args.step_ms / 1e3 / args.workers
    print(f"points {points}, optimiser steps {total_steps:.0f}, training FLOPs {total_flops:.3e}")
    print(f"compute-bound: {compute_s:.0f} s at {args.gpu_tflops:g} TFLOP/s; "
          f"launch-bound: {launch_s:.0f} s at {args.step_ms:g} ms/step over {args.workers} workers")
    print(f"estimate: {max(compute_s, launch_s):.0f} s")
    print(f"CPU: median {cpu_rate / 1e9:.1f} GFLOP/s over the forward+backward measurements of FLOPS_DB: "
          f"{total_flops / cpu_rate / 3600:.1f} h of this CPU")
    for (seq_len, d_model), value in sorted(by_setting.items()):
        print(f"  seq_len {seq_len:4d} d_model {d_model:4d}: {value:.2e} FLOPs ({value / total_flops:5.1%})")


if __name__ == "__main__":
    main()
