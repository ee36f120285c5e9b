#!/usr/bin/env bash
# The README's "Captioning photographs" section, run as written on a fixture:
# its python block turns a torchvision ResNet-101 `.pth` (random weights,
# batch-norm statistics randomised, saved by torch.save as torchvision's own
# files are) into safetensors, then its sh block runs word for word with this
# build's imcap first on PATH, in a folder laid out as the README assumes:
# Flicker8k_Dataset/ (24 synthetic scenes) with a Karpathy-split
# dataset_flickr8k.json, and photo.jpg (tests/data/images/photo.jpg).
# Then: the two models exist, the trained one keeps the encoder's tensors
# byte-identical to the converted weights' and carries in-domain statistics,
# the caption line names photo.jpg, and a second run reuses the feature cache.
#
#   tests/readme/photo.sh IMCAP_EXE SOURCE_ROOT WORK_DIR
#
# Exit 0 passed, 1 failed, 77 skipped (no torch/torchvision for
# /usr/bin/python3, where Debian installs them; scripts/setup.sh --test-deps).
# The safetensors Python package is not in Debian 12, so the python block
# runs against a stand-in module (safetensors.torch.save_file over
# scripts/backbone_parity.py's writer, which writes the container's layout).
set -euo pipefail

say() { echo "test_readme_photo: $*" >&2; }
die() { say "FAIL: $*"; exit 1; }

[ $# -eq 3 ] || { say "usage: $0 IMCAP_EXE SOURCE_ROOT WORK_DIR"; exit 2; }
exe=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
src=$(cd "$2" && pwd)
work=$3
t0=$(date +%s)
PY=/usr/bin/python3
if ! "$PY" -c 'import torch, torchvision' 2>/dev/null; then
  say "SKIP: no torch/torchvision for $PY (scripts/setup.sh --test-deps installs Debian's python3-torch, python3-torchvision)"
  exit 77
fi

# the section's code blocks, in order: python first, then sh
section=$(awk '/^## Captioning photographs/ { on = 1; next } on && /^## / { exit } on { print }' "$src/README.md")
block() { printf '%s\n' "$section" | awk -v lang="$1" '$0 == "```" lang { inside = 1; next }
                                                      inside && /^```/ { exit } inside { print }'; }
py_block=$(block python)
sh_block=$(block sh)
[ -n "$py_block" ] || die "README.md's photo section has no python block"
[ -n "$sh_block" ] || die "README.md's photo section has no sh block"
pth=$(printf '%s\n' "$py_block" | grep -o '"[^"]*\.pth"' | tr -d '"')
[ -n "$pth" ] || die "the python block names no .pth file"

rm -rf "$work"
mkdir -p "$work/stub/safetensors" "$work/run"
cd "$work/run"

# a torchvision .pth as users download it, and the stand-in safetensors module
"$PY" - "$src/scripts" "$pth" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import torch
import backbone_parity as bp
torch.save(bp.random_network("resnet101").state_dict(), sys.argv[2])
EOF
: > "$work/stub/safetensors/__init__.py"
cat > "$work/stub/safetensors/torch.py" <<EOF
import sys
sys.path.insert(0, "$src/scripts")
from backbone_parity import save_safetensors as _save

def save_file(tensors, filename, metadata=None):
    _save(tensors, filename)
EOF

# Flickr8k's layout: images in Flicker8k_Dataset/, Karpathy's JSON beside it
"$exe" synth --count 24 --seed 5 --size 96 -q -o synth
mv synth/images Flicker8k_Dataset
"$PY" - <<'EOF'
import json
d = json.load(open("synth/dataset.json"))
for im in d["images"]:
    im.pop("filepath", None)
d["dataset"] = "flickr8k"
json.dump(d, open("dataset_flickr8k.json", "w"))
EOF
cp "$src/tests/data/images/photo.jpg" photo.jpg

say "python block"
PYTHONPATH="$work/stub" "$PY" -c "$py_block" || die "the python block failed"
st=$(printf '%s\n' "$sh_block" | grep -o -- '--backbone-weights [^ ]*' | awk '{ print $2 }')
[ -f "$st" ] || die "the python block did not write $st, which the sh block reads"

say "sh block"
mkdir -p "$work/bin"
ln -sf "$exe" "$work/bin/imcap"
PATH="$work/bin:$PATH" bash -euo pipefail -c "$sh_block" > out.txt 2> err.txt ||
  { cat err.txt >&2; die "the sh block failed"; }

[ -f r101.safetensors ] || die "init wrote no r101.safetensors"
[ -f r101cap.safetensors ] || die "train wrote no r101cap.safetensors"
[ -f r101cap.safetensors.features ] || die "no feature cache r101cap.safetensors.features, as the README says"
grep -q $'^photo.jpg\t.' out.txt || { cat out.txt err.txt >&2; die "no caption line for photo.jpg"; }
grep -q "photo.jpg" err.txt || say "note: no warning for photo.jpg (the fixture's model is trained on 24 scenes)"

# the frozen encoder: every conv weight of the trained model is, byte for
# byte, one of the converted file's; and training added in-domain statistics
"$PY" - "$st" r101cap.safetensors <<'EOF' || die "the encoder changed in training"
import json, struct, sys

def tensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    return {k: (t["shape"], data[8 + n + t["data_offsets"][0]:8 + n + t["data_offsets"][1]]) for k, t in header.items()}

source = {raw for shape, raw in tensors(sys.argv[1]).values() if len(shape) == 4}
model = tensors(sys.argv[2])
convs = [k for k, (shape, raw) in model.items() if k.startswith("encoder.") and len(shape) == 4]
assert len(convs) >= 100, f"only {len(convs)} encoder conv weights"
changed = [k for k in convs if model[k][1] not in source]
assert not changed, f"{len(changed)} conv weights differ from the converted file's, e.g. {changed[:3]}"
assert "stats.domain.mean" in model, "no in-domain statistics (stats.domain.mean)"
print(f"{len(convs)} conv weights byte-identical to {sys.argv[1]}'s")
EOF

# again (two steps): the feature cache is reused, no
# encoder pass over the images
say "second run of the train line"
train_line=$(printf '%s\n' "$sh_block" | awk '/^imcap train/ { t = $0; while (t ~ /\\$/) { getline n; sub(/\\$/, "", t); t = t " " n } print t }')
[ -n "$train_line" ] || die "no train line in the sh block"
PATH="$work/bin:$PATH" bash -euo pipefail -c "$train_line --max-steps 2" 2> err2.txt || { cat err2.txt >&2; die "the second train failed"; }
grep -q "reusing feature cache r101cap.safetensors.features" err2.txt || { cat err2.txt >&2; die "the second run did not reuse the feature cache"; }
cd / && rm -rf "$work"   # 1 GB of models and caches; kept when a check fails
say "passed in $(( $(date +%s) - t0 )) s"
