#!/usr/bin/env python3
"""The order of the asynchronous events in one kernel of an sm_90a cubin, where no cuobjdump is at hand.

    nvcc -std=c++17 -gencode arch=compute_90a,code=sm_90a -I. -cubin attention/cuda/sm90/window_forward.cu \
         -o /tmp/w.cubin --expt-relaxed-constexpr --use_fast_math -O2
    scripts/sass_events.py /tmp/w.cubin window_forward

prints one line per run of equal events: the offset, HGMMA (n128 SS or n64 RS), ARRIVE
(wgmma.fence), DEPBAR.LE n (wgmma.wait_group n), EX2 / RCP / LG2 (MUFU), MBAR.TRYWAIT /
MBAR.ARRIVE, BAR, BRA.  In the sm90 forwards' key loop, the exponentials must sit between
"DEPBAR.LE 1" and "DEPBAR.LE 0" (the softmax overlapping P V, online_softmax.cuh).

The opcodes were read off cuobjdump -sass listings of these kernels (CUDA 13.0, sm_90a): only
the low 12 bits of an instruction's first word and a few modifier bits; everything else prints
nothing.  Another ptxas or architecture may encode differently: check against cuobjdump where it
exists (the GPU machine has it).
"""
import struct
import sys


def sections(data):
    shoff = struct.unpack_from('<Q', data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from('<HHH', data, 0x3A)
    table = [struct.unpack_from('<IIQQQQ', data, shoff + i * shentsize) for i in range(shnum)]
    names = table[shstrndx][4]

    def name(offset):
        end = data.index(b'\0', names + offset)
        return data[names + offset:end].decode()

    return [(name(t[0]), t[4], t[5]) for t in table]


def event(lo, hi):
    op = lo & 0xFFF
    if op == 0x9C5:
        return 'DEPBAR.LE %d' % ((hi >> 8) & 0xFF) if lo & (1 << 47) else 'ARRIVE'
    if op == 0x308:
        return {0x08: 'EX2', 0x10: 'RCP', 0x0C: 'LG2'}.get((hi >> 8) & 0xFF, 'MUFU')
    return {0x9F0: 'HGMMA.n128', 0xDF0: 'HGMMA.n64.RS', 0x5A7: 'MBAR.TRYWAIT', 0x9A7: 'MBAR.ARRIVE',
            0xB1D: 'BAR', 0x947: 'BRA'}.get(op)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    data = open(sys.argv[1], 'rb').read()
    for name, offset, size in sections(data):
        if not (name.startswith('.text.') and sys.argv[2] in name):
            continue
        print(name)
        runs = []
        for pc in range(0, size, 16):
            e = event(*struct.unpack_from('<QQ', data, offset + pc))
            if e is None:
                continue
            if runs and runs[-1][1] == e:
                runs[-1][2] += 1
            else:
                runs.append([pc, e, 1])
        for pc, e, count in runs:
            print('%06x %s%s' % (pc, e, ' x%d' % count if count > 1 else ''))


if __name__ == '__main__':
    main()
