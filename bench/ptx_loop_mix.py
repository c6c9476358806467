"""The instruction mix of a kernel's loops, read from PTX: a static count for kernels bound by
instruction issue (Nsight Compute: issue slots busy, DRAM idle), where the count per loop trip is
what sets the time.  Runs where nvcc does (no GPU, no cuobjdump).

    nvcc -std=c++17 -arch=sm_90a -I. -ptx --expt-relaxed-constexpr --use_fast_math -O3 \
        mixers/cuda/selective_scan.cu -o /tmp/scan.ptx
    python3 bench/ptx_loop_mix.py /tmp/scan.ptx scan_backward_kernelI13__nv_bfloat16 [--top 16]

Prints every loop of the first kernel whose mangled name contains the given text (a loop: the
instructions from a label to a branch back to it; nested loops are counted inside their parents),
then the mix of the innermost loop with ex2 instructions (the one with the most of them: in a scan,
the loop over time steps, whose exponentials are the decays), opcodes without type suffixes.
PTX is not SASS: ptxas adds address arithmetic and may merge or split instructions, and PTX's
`mov.b32` between float and integer registers (around every shfl) costs nothing in SASS, so
this is a breakdown by kind, not the count the GPU issues.
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ptx")
    parser.add_argument("kernel", help="text in the kernel's mangled name")
    parser.add_argument("--top", type=int, default=16, help="opcodes shown in the mix")
    args = parser.parse_args()
    lines = kernel_lines(open(args.ptx).read(), args.kernel)
    found = loops(lines)
    if not found:
        raise SystemExit("ptx_loop_mix.py: the kernel has no loop")
    exps = lambda loop: sum(opcode(x) == "ex2" for x in loop[3])
    print(f"{len(instructions(lines))} instructions in the kernel; loops (label, instructions, ex2):")
    for loop in found:
        print(f"  {loop[0]} {len(loop[3])} {exps(loop)}")
    with_exps = [loop for loop in found if exps(loop)]
    innermost = [a for a in with_exps
                 if not any(b is not a and a[1] <= b[1] and b[2] <= a[2] for b in with_exps)] or found
    label, _, _, body = max(innermost, key=exps)
    mix = collections.Counter(opcode(x) for x in body)
    print(f"mix of {label} ({len(body)} instructions):")
    for op, count in mix.most_common(args.top):
        print(f"  {op:<16} {count}")


if __name__ == "__main__":
    sys.exit(main())
