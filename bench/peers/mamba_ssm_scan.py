"""mamba_ssm's selective scan (github.com/state-spaces/mamba, csrc/selective_scan) as a peer: the
reference CUDA implementation of Mamba-1's scan that a user of PyTorch would pick, loaded with
ctypes from the library bench/peers/mamba_ssm/build.sh makes (built off the device, carried
compressed in .devicedeps/mamba_ssm/, unpacked into /tmp on first use), with its backward as a torch.autograd.Function.

    out = scan(u, delta, A, B, C, D, z, bias)
        Δ = softplus(δ + b);  h_t = exp(Δ_t A) h_{t-1} + Δ_t u_t B_t;  out_t = (C_t·h_t + D u_t) SiLU(z_t)
    u, delta, z: [batch, E, N] bf16;  B, C: [batch, n, N] bf16;  A: [E, n], D, bias: [E] float32
    -> out: [batch, E, N] bf16 (mixlab's layout and meaning: mixers/selective_scan.h)

`available()` says whether the library loads here (and why not); `check(scan_reference)` compares
forward and gradients with a reference on a small input (a peer must compute the same thing);
`usable()` runs that check in a child process (`python3 mamba_ssm_scan.py --check`), since a
failing launch inside the library aborts its process: a caller with other rows to time keeps them.
"""
import ctypes
import lzma
import os
import shutil
import subprocess
import sys
import tempfile

import torch

COMPRESSED = os.path.join(
    os.path.dirname(__file__), "..", "..", ".devicedeps", "mamba_ssm", "libmamba_ssm_scan.so.xz")
LIBRARY = os.environ.get("MIXLAB_MAMBA_SSM_SO") or os.path.join(
    tempfile.gettempdir(), f"mixlab-mamba_ssm-{os.getuid()}", "libmamba_ssm_scan.so")
_library = None


def _unpack():
    """build.sh keeps the library as .xz (it travels with the tree); unpack it once into LIBRARY."""
    if not os.path.exists(COMPRESSED):
        return
    if os.path.exists(LIBRARY) and os.path.getmtime(LIBRARY) >= os.path.getmtime(COMPRESSED):
        return
    os.makedirs(os.path.dirname(LIBRARY), exist_ok=True)
    partial = LIBRARY + f".{os.getpid()}"
    with lzma.open(COMPRESSED) as source, open(partial, "wb") as target:
        shutil.copyfileobj(source, target)
    os.replace(partial, LIBRARY)  # atomic: a concurrent reader sees the whole file or none


def available():
    """(True, path) when the library loads, else (False, the reason)."""
    global _library
    if _library is None:
        _unpack()
        if not os.path.exists(LIBRARY):
            return False, f"{COMPRESSED} not built (bench/peers/mamba_ssm/build.sh)"
        try:
            _library = ctypes.CDLL(LIBRARY)
        except OSError as error:
            return False, str(error)
        pointers = [ctypes.c_void_p] * 12
        _library.mamba_ssm_forward_bf16.argtypes = [ctypes.c_int] * 4 + pointers
        _library.mamba_ssm_backward_bf16.argtypes = [ctypes.c_int] * 4 + [ctypes.c_void_p] * 20
        _library.mamba_ssm_chunks.argtypes = [ctypes.c_int]
    return True, LIBRARY


def _loaded():
    """The library, loaded on first use.  The custom operators below call it rather than read
    _library: under `--check` this file is both __main__ and the module scan_peers imports, and the
    operator registered last is the one dispatched."""
    ok, why = available()
    if not ok:
        raise RuntimeError(f"mamba_ssm_scan.py: {why}")
    return _library


def _pointers(*tensors):
    return [ctypes.c_void_p(t.data_ptr()) for t in tensors]


def _stream():
    return ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)


def _check(status, what):
    if status != 0:
        raise RuntimeError(f"mamba_ssm_scan.py: {what}: CUDA error {status}")


def _library_inputs(u, delta, A, B, C, D, z, bias):
    """The arguments as the library reads them: contiguous; B, C as [batch, 1 group, n, N]; A, D and
    the Δ bias in float32."""
    return (u.contiguous(), delta.contiguous(), A.float().contiguous(), B.contiguous().unsqueeze(1),
            C.contiguous().unsqueeze(1), D.float().contiguous(), z.contiguous(), bias.float().contiguous())


def _launch_forward(u, delta, A, B4, C4, D, z, bias):
    """u, delta, z: [batch, E, N] bf16; B4, C4: [batch, 1, n, N] bf16; A: [E, n], D, bias: [E] float32,
    all contiguous -> (out_z, out, x): out_z = out ⊙ SiLU(z) [batch, E, N]; x: the chunk states."""
    batch, dim, length = u.shape
    out, out_z = torch.empty_like(u), torch.empty_like(u)
    x = torch.empty(batch, dim, _loaded().mamba_ssm_chunks(length), 2 * A.shape[1], device=u.device)
    _check(_loaded().mamba_ssm_forward_bf16(batch, dim, length, A.shape[1],
                                            *_pointers(u, delta, A, B4, C4, D, z, bias, out, out_z, x),
                                            _stream()), "forward")
    return out_z, out, x


def _launch_backward(u, delta, A, B4, C4, D, z, bias, out, x, dout):
    """The gradients of out_z for each input of _launch_forward, in its shape and dtype."""
    batch, dim, length = u.shape
    du, ddelta, dz = torch.empty_like(u), torch.empty_like(delta), torch.empty_like(z)
    dA, dD, dbias = torch.zeros_like(A), torch.zeros_like(D), torch.zeros_like(bias)
    dB, dC = torch.zeros_like(B4, dtype=torch.float32), torch.zeros_like(C4, dtype=torch.float32)
    _check(_loaded().mamba_ssm_backward_bf16(batch, dim, length, A.shape[1],
                                             *_pointers(u, delta, A, B4, C4, D, z, bias, out, x, dout.contiguous(),
                                                        du, ddelta, dA, dB, dC, dD, dz, dbias),
                                             _stream()), "backward")
    return du, ddelta, dA, dB.to(B4.dtype), dC.to(C4.dtype), dD, dz, dbias


class _Scan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, bias):
        inputs = _library_inputs(u, delta, A, B, C, D, z, bias)
        out_z, out, x = _launch_forward(*inputs)
        ctx.save_for_backward(*inputs, out, x)
        return out_z

    @staticmethod
    def backward(ctx, dout):
        du, ddelta, dA, dB4, dC4, dD, dz, dbias = _launch_backward(*ctx.saved_tensors, dout)
        return du, ddelta, dA, dB4.squeeze(1), dC4.squeeze(1), dD, dz, dbias


def scan(u, delta, A, B, C, D, z, bias):
    ok, why = available()
    if not ok:
        raise RuntimeError(f"mamba_ssm_scan.py: {why}")
    if u.dtype != torch.bfloat16:
        raise TypeError(f"mamba_ssm_scan.py: bf16 activations only (the library holds the bf16 kernels), got {u.dtype}")
    return _Scan.apply(u, delta, A, B, C, D, z, bias)


# The same scan as one opaque operator (torch.library.custom_op, PyTorch >= 2.4), so that
# torch.compile keeps the whole model in one graph (and mode="reduce-overhead" in one CUDA graph)
# instead of breaking the graph at every call of _Scan's ctypes launches: the strongest way a user
# can put mamba_ssm's kernels under torch.compile.  Same launches, same meaning as scan().
HAS_CUSTOM_OP = hasattr(torch, "library") and hasattr(torch.library, "custom_op")
if HAS_CUSTOM_OP:
    @torch.library.custom_op("mixlab_peer::mamba_ssm_forward", mutates_args=())
    def _forward_op(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B4: torch.Tensor, C4: torch.Tensor,
                    D: torch.Tensor, z: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return _launch_forward(u, delta, A, B4, C4, D, z, bias)

    @_forward_op.register_fake
    def _(u, delta, A, B4, C4, D, z, bias):
        batch, dim, length = u.shape
        chunks = _loaded().mamba_ssm_chunks(length)
        return torch.empty_like(u), torch.empty_like(u), u.new_empty(batch, dim, chunks, 2 * A.shape[1],
                                                                     dtype=torch.float32)

    @torch.library.custom_op("mixlab_peer::mamba_ssm_backward", mutates_args=())
    def _backward_op(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B4: torch.Tensor, C4: torch.Tensor,
                     D: torch.Tensor, z: torch.Tensor, bias: torch.Tensor, out: torch.Tensor, x: torch.Tensor,
                     dout: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                  torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return _launch_backward(u, delta, A, B4, C4, D, z, bias, out, x, dout)

    @_backward_op.register_fake
    def _(u, delta, A, B4, C4, D, z, bias, out, x, dout):
        return (torch.empty_like(u), torch.empty_like(delta), torch.empty_like(A), torch.empty_like(B4),
                torch.empty_like(C4), torch.empty_like(D), torch.empty_like(z), torch.empty_like(bias))

    def _setup_context(ctx, inputs, output):
        _, out, x = output
        ctx.save_for_backward(*inputs, out, x)

    def _backward(ctx, d_out_z, d_out, d_x):  # only out_z reaches the loss
        return _backward_op(*ctx.saved_tensors, d_out_z)

    _forward_op.register_autograd(_backward, setup_context=_setup_context)


def scan_op(u, delta, A, B, C, D, z, bias):
    """scan() through the custom operator above (same arguments, same result).  Written for
    torch.compile to trace: once the library is loaded, every test below is a constant."""
    if _library is None:
        _loaded()
    if not HAS_CUSTOM_OP:
        raise RuntimeError("mamba_ssm_scan.py: this torch has no torch.library.custom_op")
    if u.dtype != torch.bfloat16:
        raise TypeError(f"mamba_ssm_scan.py: bf16 activations only (the library holds the bf16 kernels), got {u.dtype}")
    out_z, _, _ = _forward_op(*_library_inputs(u, delta, A, B, C, D, z, bias))
    return out_z


def check(reference, candidate=None, batch=2, dim=40, length=300, dstate=16, tolerance=0.05):
    """Forward and every gradient of candidate() (default scan()) against reference() (same
    arguments, float32 inside) on a small bf16 input; raises with the worst relative error where one
    is above tolerance."""
    torch.manual_seed(0)
    mk = lambda *s, dtype=torch.bfloat16: torch.randn(*s, device="cuda", dtype=dtype)
    inputs = [mk(batch, dim, length), mk(batch, dim, length) - 1, -torch.exp(0.5 * mk(dim, dstate, dtype=torch.float32)),
              mk(batch, dstate, length), mk(batch, dstate, length), mk(dim, dtype=torch.float32),
              mk(batch, dim, length), 0.3 * mk(dim, dtype=torch.float32)]
    names = ["u", "delta", "A", "B", "C", "D", "z", "bias"]
    dout = mk(batch, dim, length)
    results = []
    for fn in (candidate or scan, reference):
        leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
        out = fn(*leaves)
        out.backward(dout)
        results.append([out.float()] + [t.grad.float() for t in leaves])
    for name, mine, ref in zip(["out"] + names, *results):
        error = ((mine - ref).norm() / ref.norm().clamp_min(1e-12)).item()
        if not error <= tolerance:
            raise AssertionError(f"mamba_ssm_scan.py: {name} is off the reference by {error:.3g} (relative L2)")


def usable(timeout_s=300):
    """(True, path) when the library loads and check() passes in a child process, else (False, why)."""
    ok, why = available()
    if not ok:
        return ok, why
    try:
        child = subprocess.run([sys.executable, os.path.abspath(__file__), "--check"], capture_output=True,
                               text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False, f"the check did not finish in {timeout_s} s"
    if child.returncode != 0:
        return False, f"the check failed (exit {child.returncode}): {(child.stdout + child.stderr).strip()[-400:]}"
    return True, LIBRARY


if __name__ == "__main__":
    if sys.argv[1:] != ["--check"]:
        raise SystemExit("usage: python3 mamba_ssm_scan.py --check")
    from scan_peers import scan_eager  # the eager reference scan_peers.py times (float32 inside)
    check(scan_eager)
    print("mamba_ssm_scan.py: forward and gradients match the eager scan")
    if HAS_CUSTOM_OP:
        check(scan_eager, candidate=scan_op)
        print("mamba_ssm_scan.py: so do those of scan_op (the custom operator)")
