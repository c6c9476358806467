"""Merge the CSVs of bench_cuda_kernels (mixlab) and the peers into the markdown tables of docs/PERF.md.

Usage: python3 make_table.py mixlab.csv peers_attention.csv peers_scan.csv > table.md
"""
import csv
import sys


def load(paths):
    rows = []
    for p in paths:
        try:
            with open(p) as f:
                rows += list(csv.DictReader(f))
        except FileNotFoundError:
            pass
    return rows


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


FLEX_FORMS = {"flex": {"swa": "band", "scout": "gathered"}, "flex_dense": {"scout": "dense"}}


def best_flex(get, op, n, hd):
    """(fwd+bwd ms, mask name) of the fastest Flex formulation timed for (op, N, d), or (None, "–")."""
    timed = [(num(get.get((impl, op, n, hd), {}).get("fwdbwd_ms")), forms[op])
             for impl, forms in FLEX_FORMS.items() if op in forms]
    timed = [t for t in timed if t[0] is not None]
    return min(timed) if timed else (None, "–")


def ms_fmt(x):
    return "–" if x is None else f"{x:.3f}"


def x_fmt(a, b):
    """b / a as a speed-up of a over b."""
    return "–" if a is None or b is None else f"{b / a:.2f}×"


def print_sm90_table(get, peak, sm90, op, title, head_dim):
    """The sm90 (wgmma) kernels of one op and head dim beside the sm_80 kernels and the best Flex mask."""
    print(f"### {title}, on Hopper's wgmma (attention/cuda/sm90), d = {head_dim} (ms; the best Flex mask)\n")
    print("| N | sm_80 fwd | sm90 fwd | flex fwd | sm90 fwd vs flex | sm_80 fwd+bwd | sm90 fwd+bwd | "
          "TFLOP/s (kept) | % peak | flex fwd+bwd | sm90 vs flex | sm90 vs sm_80 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sm90:
        n, hd = r["N"], r["head_dim"]
        f90, b90 = num(r["fwd_ms"]), num(r["fwdbwd_ms"])
        m80 = get.get(("mixlab", op, n, hd), {})
        f80, b80 = num(m80.get("fwd_ms")), num(m80.get("fwdbwd_ms"))
        fb, mask = best_flex(get, op, n, hd)
        impl = {"band": "flex", "gathered": "flex", "dense": "flex_dense"}.get(mask)
        ff = num(get.get((impl, op, n, hd), {}).get("fwd_ms")) if impl else None
        tf = num(r["fwdbwd_flops"]) / (b90 * 1e-3) if b90 else None
        rate = f"{tf / 1e12:.0f} | {100 * tf / peak:.0f}%" if tf and peak else "– | –"
        print(f"| {n} | {ms_fmt(f80)} | {ms_fmt(f90)} | {ms_fmt(ff)} | {x_fmt(f90, ff)} | {ms_fmt(b80)} | "
              f"{ms_fmt(b90)} | {rate} | {ms_fmt(fb)} | {x_fmt(b90, fb)} | {x_fmt(b90, b80)} |")
    print()


def main():
    rows = load(sys.argv[1:])
    get = {}
    for r in rows:
        get[(r["impl"], r["op"], r["N"], r["head_dim"])] = r
    peak = None
    for key in [("mixlab", "matmul_peak", "8192", "0"), ("ceiling", "matmul_peak", "8192", "0")]:
        if key in get:
            peak = num(get[key]["fwd_flops"]) / (num(get[key]["fwd_ms"]) * 1e-3)
            break
    bw = num(get.get(("ceiling", "copy_bandwidth", "0", "0"), {}).get("fwd_ms"))
    print(f"Measured bf16 matmul peak: {peak / 1e12:.0f} TFLOP/s" if peak else "Measured bf16 matmul peak: n/a")
    print(f"Measured copy bandwidth (read + write): {bw:.0f} GB/s\n" if bw else "")

    for op, title in [("swa", f"Sliding-window attention, W = 1024"), ("scout", "SCOUT checkpoint attention, S = 10")]:
        print(f"### {title} (bf16, batch×heads×N = 2^20 tokens; fwd+bwd ms)\n")
        print("| d | N | mixlab fwd | mixlab fwd+bwd | TFLOP/s (kept) | % peak | flex fwd+bwd | "
              + ("flex mask | " if op == "scout" else "") + "vs flex | "
              + ("eager fwd+bwd | vs eager | " if op == "scout" else "") + "SDPA full causal fwd+bwd |")
        print("|---|---|---|---|---|---|---|---|" + ("---|---|---|" if op == "scout" else "") + "---|")
        for r in rows:
            if r["impl"] != "mixlab" or r["op"] != op:
                continue
            n, hd = r["N"], r["head_dim"]
            m_f, m_b = num(r["fwd_ms"]), num(r["fwdbwd_ms"])
            tf = num(r["fwdbwd_flops"]) / (m_b * 1e-3) if m_b else None
            # The peer is the faster Flex formulation at this shape: SCOUT's gathered checkpoints
            # win from 4k up, its dense mask at 1k (attention_peers.py times both).
            fb, mask = best_flex(get, op, n, hd)
            eager = get.get(("eager", op, n, hd), {})
            sdpa = get.get(("sdpa_full", "causal", n, hd), {})
            eb, sb = num(eager.get("fwdbwd_ms")), num(sdpa.get("fwdbwd_ms"))
            flex_cells = f"{ms_fmt(fb)} | " + (f"{mask} | " if op == "scout" else "") + f"{x_fmt(m_b, fb)} | "
            line = (f"| {hd} | {n} | {ms_fmt(m_f)} | {ms_fmt(m_b)} | {tf / 1e12:.0f} | {100 * tf / peak:.0f}% | "
                    if tf and peak else f"| {hd} | {n} | {ms_fmt(m_f)} | {ms_fmt(m_b)} | – | – | ") + flex_cells
            if op == "scout":
                line += f"{ms_fmt(eb) if eb else 'OOM/–'} | {x_fmt(m_b, eb)} | "
            line += f"{ms_fmt(sb)} |"
            print(line)
        print()

    sm90_dims = sorted({r["head_dim"] for r in rows if r["impl"] == "mixlab_sm90"}, key=int)
    for op, title in [("swa", "Sliding-window attention, W = 1024"), ("scout", "SCOUT checkpoint attention, S = 10")]:
        for head_dim in sm90_dims:
            sm90 = [r for r in rows if r["impl"] == "mixlab_sm90" and r["op"] == op and r["head_dim"] == head_dim]
            if sm90:
                print_sm90_table(get, peak, sm90, op, title, head_dim)

    titles = {"scan": "batch 8, E = 2048", "scan_narrow": "batch 1, E = 1536: the kernels cut time into slices"}
    for op, title in titles.items():
        scan_rows = [r for r in rows if r["impl"] == "mixlab" and r["op"] == op]
        if not scan_rows:
            continue
        print(f"### Mamba-1 selective scan (bf16 activations, {title}, n = 16; ms)\n")
        print("| N | mixlab fwd | mixlab fwd+bwd | mamba_ssm fwd | mamba_ssm fwd+bwd | vs mamba_ssm | eager fwd+bwd "
              "| vs eager | floor fwd+bwd | mixlab / floor |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in scan_rows:
            n = r["N"]
            m_f, m_b = num(r["fwd_ms"]), num(r["fwdbwd_ms"])
            ref = get.get(("mamba_ssm", op, n, "16"), {})  # github.com/state-spaces/mamba's CUDA scan
            r_f, r_b = num(ref.get("fwd_ms")), num(ref.get("fwdbwd_ms"))
            eb = num(get.get(("eager", op, n, "16"), {}).get("fwdbwd_ms"))
            fl = num(get.get(("floor", op, n, "16"), {}).get("fwdbwd_ms"))
            ratio = "–" if fl is None else f"{m_b / fl:.2f}"
            print(f"| {n} | {ms_fmt(m_f)} | {ms_fmt(m_b)} | {ms_fmt(r_f)} | {ms_fmt(r_b)} | {x_fmt(m_b, r_b)} "
                  f"| {ms_fmt(eb)} | {x_fmt(m_b, eb)} | {ms_fmt(fl)} | {ratio} |")
        print()

if __name__ == "__main__":
    main()
