#!/usr/bin/env python3
"""cubin_regs.py — each kernel's registers and frame (local memory: spills and
local arrays) in an sm_90a cubin, read from the ELF's .nv.info section
(EIATTR_REGCOUNT, EIATTR_FRAME_SIZE: what `ptxas -v` prints), for checking a
change that must not raise them without cuobjdump at hand.

  tools/cubin_regs.py A.cubin           one line a kernel: code bytes, registers, frame
  tools/cubin_regs.py A.cubin B.cubin   the same for both, and whether each kernel's code is
                                        the same bytes; exit 1 if B's registers or frame rise

tools/cubins.sh --diff runs it on every cubin that differs."""
import struct
import sys

EIATTR_FRAME_SIZE, EIATTR_REGCOUNT = 0x11, 0x2F
EIFMT_SVAL = 4  # an attribute with a 16-bit length and a value (the others are 2 or 4 bytes in all)


def sections(d):
    """(name, offset, size) of each section of the ELF64 image d."""
    shoff, = struct.unpack_from('<Q', d, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from('<HHH', d, 0x3A)
    raw = [struct.unpack_from('<IIQQQQIIQQ', d, shoff + i * shentsize) for i in range(shnum)]
    names = raw[shstrndx][4]

    def name(o):
        return d[names + o:d.index(b'\0', names + o)].decode()

    return [(name(s[0]), s[4], s[5]) for s in raw]


def kernels(path):
    """{kernel: {'code': bytes, 'regs': int, 'frame': int}} of the cubin at path."""
    d = open(path, 'rb').read()
    if d[:4] != b'\x7fELF' or d[4] != 2:
        sys.exit('cubin_regs: %s is not an ELF64 cubin' % path)
    secs = {n: (o, s) for n, o, s in sections(d)}
    out = {n[6:]: {'code': d[o:o + s]} for n, o, s in sections(d) if n.startswith('.text.')}
    # the attributes name a kernel by its symbol's index
    stro, _ = secs['.strtab']
    symo, syms = secs['.symtab']
    sym = {}
    for i in range(syms // 24):
        st_name, = struct.unpack_from('<I', d, symo + 24 * i)
        n = d[stro + st_name:d.index(b'\0', stro + st_name)].decode()
        if n in out:
            sym[i] = n
    o, size = secs.get('.nv.info', (0, 0))
    p = o
    while p < o + size:
        fmt, attr = d[p], d[p + 1]
        if fmt != EIFMT_SVAL:
            p += 4
            continue
        n, = struct.unpack_from('<H', d, p + 2)
        if attr in (EIATTR_REGCOUNT, EIATTR_FRAME_SIZE) and n >= 8:
            i, v = struct.unpack_from('<II', d, p + 4)
            if i in sym:
                out[sym[i]]['regs' if attr == EIATTR_REGCOUNT else 'frame'] = v
        p += 4 + n
    return out


def line(k):
    return 'code %6d regs %3s frame %4s' % (len(k['code']), k.get('regs', '?'), k.get('frame', '?'))


def main(argv):
    if len(argv) not in (2, 3):
        sys.exit(__doc__)
    a = kernels(argv[1])
    b = kernels(argv[2]) if len(argv) == 3 else None
    rose = False
    for f in sorted(a):
        s = '%-32s %s' % (f, line(a[f]))
        if b is not None:
            if f not in b:
                s += '  | missing'
            else:
                s += '  | %s  %s' % (line(b[f]), 'same code' if a[f]['code'] == b[f]['code'] else 'code differs')
                for key in ('regs', 'frame'):
                    if b[f].get(key, 0) > a[f].get(key, 0):
                        s += '  %s ROSE' % key
                        rose = True
        print(s)
    return 1 if rose else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
