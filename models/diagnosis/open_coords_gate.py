#!/usr/bin/env python3
"""open_coords_gate.py IN OUT [BIAS]: sets the context gate of the two coordinate channels
(the last two of D) to sigmoid(BIAS) with zero weights. At BIAS 30 the float sigmoid is
exactly 1 and its derivative exactly 0, so training never moves these rows: the attended
x and y always reach the LSTM and the deep output."""
import json, struct, sys
import numpy as np
src, out = sys.argv[1], sys.argv[2]
bias = float(sys.argv[3]) if len(sys.argv) > 3 else 30.0
raw = bytearray(open(src, 'rb').read())
n = struct.unpack('<Q', raw[:8])[0]
h = json.loads(raw[8:8 + n])
def view(name):
    a, z = h[name]['data_offsets']
    return a, z, np.frombuffer(bytes(raw[8 + n + a:8 + n + z]), dtype='<f4').reshape(h[name]['shape']).copy()
def put(a, z, v):
    raw[8 + n + a:8 + n + z] = v.astype('<f4').tobytes()
a, z, w = view('decoder.f_beta.weight'); w[-2:, :] = 0; put(a, z, w)
a, z, b = view('decoder.f_beta.bias'); b[-2:] = bias; put(a, z, b)
open(out, 'wb').write(bytes(raw))
