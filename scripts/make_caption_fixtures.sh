#!/usr/bin/env bash
# Regenerates tests/data/fixtures/captions_*.tsv: the captions and scores of
# the shipped model on samples/ and on 1,000 synthetic scenes (imcap synth
# --count 1000 --seed 4242 --size 64), greedy and beam 3. test_captions
# checks every build against them, so a speed change cannot change a caption.
# Run this ONLY when the model or the decoding rules change on purpose, and
# say so in the commit. Usage: scripts/make_caption_fixtures.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
"$B/imcap" synth --count 1000 --seed 4242 --size 64 --split-fractions 0,0,1 -o "$T/scenes" >/dev/null 2>&1
for beam in 1 3; do
  for set in samples synth4242; do
    dir=samples; [ "$set" = synth4242 ] && dir="$T/scenes/images"
    "$B/imcap" batch --threads 1 --beam "$beam" --no-timing -q -o "$T/$set.jsonl" "$dir"
    python3 - "$T/$set.jsonl" > "tests/data/fixtures/captions_${set}_beam${beam}.tsv" <<'PY'
import json, os, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(f"{os.path.basename(r['path'])}\t{r['caption']}\t{r['score']:.6f}")
PY
  done
done
wc -l tests/data/fixtures/captions_*.tsv
