#!/usr/bin/env python3
"""scale_feat.py IN OUT S: multiplies the last conv's weight and bias (encoder.9) by S, so the
CNN channels of the annotation vectors shrink by S (ReLU is positively homogeneous) while the
coordinate channels stay: the coordinates' relative scale grows by 1/S."""
import json, struct, sys
import numpy as np
src, out, s = sys.argv[1], sys.argv[2], float(sys.argv[3])
raw = bytearray(open(src, 'rb').read())
n = struct.unpack('<Q', raw[:8])[0]
h = json.loads(raw[8:8 + n])
for name in ('encoder.9.weight', 'encoder.9.bias'):
    a, z = h[name]['data_offsets']
    v = np.frombuffer(bytes(raw[8 + n + a:8 + n + z]), dtype='<f4') * np.float32(s)
    raw[8 + n + a:8 + n + z] = v.astype('<f4').tobytes()
open(out, 'wb').write(bytes(raw))
