#!/usr/bin/env python3
"""splice.py DST SRC OUT PREFIX...: OUT = DST with every tensor whose name starts with
one of PREFIX taken from SRC (same name, dtype and shape required); DST's metadata kept."""
import json, struct, sys

def read(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:]

dst, src, out, *prefixes = sys.argv[1:]
hd, bd = read(dst)
hs, bs = read(src)
body = bytearray(bd)
n = 0
for name, e in hd.items():
    if name == '__metadata__' or not name.startswith(tuple(prefixes)):
        continue
    s = hs[name]
    assert s['shape'] == e['shape'] and s['dtype'] == e['dtype'], name
    a, z = e['data_offsets']
    sa, sz = s['data_offsets']
    body[a:z] = bs[sa:sz]
    n += 1
raw = open(dst, 'rb').read()
hl = struct.unpack('<Q', raw[:8])[0]
open(out, 'wb').write(raw[:8 + hl] + bytes(body))
print(f'{n} tensors from {src}', file=sys.stderr)
