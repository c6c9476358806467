"""The LibTorch expressions that attention/cuda/sm90/backward_rows.cu replaced, timed at the shapes
of `backward_rows_check --time` (B·H 16, N 65,536, d 64 and 128): before a backward
D = (dO.float() * O.float()).sum(-1) and a zeroed float32 dQ accumulator; after it
dQ = (accumulator * scale).to(bf16) in [B, H, N, d].  Median ms (triton.testing.do_bench)."""
import torch
from triton.testing import do_bench

bh, n = 16, 65536
for d in (64, 128):
    dout = torch.randn(1, bh, n, d, device="cuda", dtype=torch.bfloat16)
    o = torch.randn_like(dout)
    acc = torch.randn(bh, d // 64, n, 64, device="cuda")

    def before():
        (dout.to(torch.float32) * o.to(torch.float32)).sum(-1).contiguous()
        torch.zeros(bh, d // 64, n, 64, device="cuda")

    def after():
        (acc.narrow(2, 0, n).permute(0, 2, 1, 3) * 0.125).to(torch.bfloat16).reshape(1, bh, n, d)

    print(f"torch: d {d}, B·H {bh}, N {n}: D + zeros {do_bench(before, return_mode='median'):.3f} ms, "
          f"dq conversion {do_bench(after, return_mode='median'):.3f} ms", flush=True)
