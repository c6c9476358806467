"""Does `transformers` read a model `mixlab export --names hf` wrote, and compute the same function?

    python bench/peers/hf_logits_check.py EXPORT_DIR [EXPORT_DIR ...] [--atol 1e-4] [--device cpu]

EXPORT_DIR holds what `mixlab export SOURCE --names hf --out EXPORT_DIR --reference-logits`
writes: config.json (Qwen2 / Llama / Mamba), model.safetensors (that architecture's weight names)
and reference_logits.safetensors (input_ids [2, 32], mixlab's float32 logits [2, vocab]).  The
model is built from config.json alone (AutoConfig + AutoModelForCausalLM.from_config, eager
attention where supported, float32), the weights are loaded strictly by name (only a tied lm_head may be absent
from the file), and its logits on input_ids are compared with mixlab's.  Prints one line per
folder; exits 1 if a folder fails to load or differs by more than --atol.
"""
import argparse
import json
import os
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM


def check(folder, atol, device):
    config = AutoConfig.from_pretrained(folder)
    try:  # eager attention where the version knows the argument (SDPA would also do in float32)
        model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    except (TypeError, ValueError):
        model = AutoModelForCausalLM.from_config(config)
    model = model.float()
    weights = load_file(os.path.join(folder, "model.safetensors"))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    tied = getattr(config, "tie_word_embeddings", False)
    missing = [name for name in missing if not (tied and name == "lm_head.weight")]
    if missing or unexpected:
        return False, f"names do not match: missing {missing[:8]}, unexpected {unexpected[:8]}"
    if tied:
        model.tie_weights()
    model.to(device).eval()
    reference = load_file(os.path.join(folder, "reference_logits.safetensors"))
    with torch.no_grad():
        logits = model(reference["input_ids"].to(device)).logits.float().cpu()
    difference = (logits - reference["logits"]).abs().max().item()
    scale = reference["logits"].abs().max().item()
    ok = difference <= atol * max(1.0, scale)
    return ok, f"{config.architectures[0]}: max |logits - mixlab| = {difference:.3e} (max |logit| {scale:.2f}, atol {atol})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--atol", type=float, default=1e-4, help="relative to max(1, max |logit|)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    import transformers
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    failed = 0
    for folder in args.folders:
        try:
            ok, message = check(folder, args.atol, args.device)
        except Exception as error:  # a folder transformers cannot read at all
            ok, message = False, f"{type(error).__name__}: {error}"
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {folder}: {message}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
