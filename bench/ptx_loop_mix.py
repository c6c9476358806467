"""The instruction mix of a kernel's loops, read from PTX or from SASS: a static count for kernels
bound by instruction issue (Nsight Compute: issue slots busy, DRAM idle), where the count per loop
trip is what sets the time.  PTX runs where nvcc does (no GPU, no cuobjdump); SASS is what the GPU
issues (`cuobjdump -sass OBJECT > FILE`, on a machine that has cuobjdump; the file is read as SASS
when it has cuobjdump's "Function :" headers).

    nvcc -std=c++17 -arch=sm_90a -I. -ptx --expt-relaxed-constexpr --use_fast_math -O3 \
        mixers/cuda/selective_scan.cu -o /tmp/scan.ptx
    python3 bench/ptx_loop_mix.py /tmp/scan.ptx scan_backward_kernelI13__nv_bfloat16 [--top 16]

Prints every loop of the first kernel whose mangled name contains the given text (a loop: the
instructions from a label to a branch back to it; nested loops are counted inside their parents),
then the mix of the innermost loop with ex2 instructions (the one with the most of them: in a scan,
the loop over time steps, whose exponentials are the decays), opcodes without type suffixes.
PTX is not SASS: ptxas adds address arithmetic and may merge or split instructions, and PTX's
`mov.b32` between float and integer registers (around every shfl) costs nothing in SASS, so
from PTX this is a breakdown by kind, not the count the GPU issues; from SASS it is that count
(full mnemonics: MUFU.EX2, LDS.128, SHFL.BFLY, ...; a loop: from a branch's target address back
to the branch).
"""
import argparse
import collections
import re
import sys

LABEL = re.compile(r"^(\$L__BB\d+_\d+):")
BRANCH = re.compile(r"bra(?:\.uni)?\s+(\$L__BB\d+_\d+);")
SUFFIX = re.compile(r"\.(f32|b32|u32|s32|b16|u16|u64|s64|b64|f16|bf16|pred|rn|ftz|approx|sync|bfly|lo|uni)\b")


def kernel_lines(ptx, name_part):
    """The lines of the first .entry whose name contains name_part, up to its closing brace."""
    lines, inside = [], False
    for line in ptx.splitlines():
        if not inside and ".entry " in line and name_part in line:  # .visible or not (internal linkage)
            inside = True
        if inside:
            lines.append(line)
            if line == "}":
                return lines
    raise SystemExit(f"ptx_loop_mix.py: no kernel whose name contains '{name_part}'")


def instructions(lines):
    """The instruction lines, stripped: no labels, comments, lone braces or directives; inline
    assembly's `{ cvt.f32.bf16 %f1, %rs1;}` counts as its instruction."""
    stripped = (x.strip().lstrip("{").rstrip("}").strip() for x in lines)
    return [x for x in stripped if x and not x.startswith(("$", "//", ".", ")"))]


def opcode(instruction):
    word = instruction.split()[1] if instruction.startswith("@") else instruction.split()[0]
    return SUFFIX.sub("", word).rstrip(";")


def loops(lines):
    """(label, first line, last line, instructions) of every backward branch."""
    labels = {m.group(1): i for i, line in enumerate(lines) if (m := LABEL.match(line))}
    found = []
    for i, line in enumerate(lines):
        m = BRANCH.search(line)
        if m and labels.get(m.group(1), i + 1) < i:
            j = labels[m.group(1)]
            found.append((m.group(1), j, i, instructions(lines[j:i + 1])))
    return found


SASS_FUNCTION = re.compile(r"^\s*Function : (\S+)", re.M)
SASS_INSTRUCTION = re.compile(r"^\s*/\*([0-9a-f]+)\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_.]*)")
SASS_BRANCH = re.compile(r"\bBRA(?:\.[A-Z.]+)?\s+(?:`?\(?)0x([0-9a-f]+)")


def sass_kernel(sass, name_part):
    """(address, mnemonic, line) of each instruction of the first function whose name contains
    name_part."""
    found, inside = [], False
    for line in sass.splitlines():
        m = SASS_FUNCTION.match(line)
        if m:
            if inside:
                break
            inside = name_part in m.group(1)
            continue
        if inside and (m := SASS_INSTRUCTION.match(line)):
            found.append((int(m.group(1), 16), m.group(2), line))
    if not found:
        raise SystemExit(f"ptx_loop_mix.py: no SASS function whose name contains '{name_part}'")
    return found


def sass_loops(code):
    """(target address, first index, last index, mnemonics) of every backward branch."""
    index = {address: i for i, (address, _, _) in enumerate(code)}
    found = []
    for i, (address, _, line) in enumerate(code):
        m = SASS_BRANCH.search(line)
        if m and int(m.group(1), 16) < address and int(m.group(1), 16) in index:
            j = index[int(m.group(1), 16)]
            found.append((f"0x{code[j][0]:x}", j, i, [op for _, op, _ in code[j:i + 1]]))
    return found


def print_mix(total, found, is_exp, top):
    exps = lambda loop: sum(is_exp(x) for x in loop[3])
    print(f"{total} instructions in the kernel; loops (label, instructions, ex2):")
    for loop in found:
        print(f"  {loop[0]} {len(loop[3])} {exps(loop)}")
    with_exps = [loop for loop in found if exps(loop)]
    innermost = [a for a in with_exps
                 if not any(b is not a and a[1] <= b[1] and b[2] <= a[2] for b in with_exps)] or found
    label, _, _, body = max(innermost, key=exps)
    mix = collections.Counter(body)
    print(f"mix of {label} ({len(body)} instructions):")
    for op, count in mix.most_common(top):
        print(f"  {op:<16} {count}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("listing", help="PTX (nvcc -ptx) or SASS (cuobjdump -sass)")
    parser.add_argument("kernel", help="text in the kernel's mangled name")
    parser.add_argument("--top", type=int, default=16, help="opcodes shown in the mix")
    args = parser.parse_args()
    text = open(args.listing).read()
    if SASS_FUNCTION.search(text):  # cuobjdump -sass
        code = sass_kernel(text, args.kernel)
        found = sass_loops(code)
        total, is_exp = len(code), lambda op: op.startswith("MUFU.EX2")
    else:
        lines = kernel_lines(text, args.kernel)
        found = [(label, j, i, [opcode(x) for x in body]) for label, j, i, body in loops(lines)]
        total, is_exp = len(instructions(lines)), lambda op: op == "ex2"
    if not found:
        raise SystemExit("ptx_loop_mix.py: the kernel has no loop")
    print_mix(total, found, is_exp, args.top)


if __name__ == "__main__":
    sys.exit(main())
