#!/usr/bin/env bash
# scripts/fuzz_seeds.sh IMCAP — regenerates the seed corpora of the fuzz
# harnesses (fuzz/corpus/NAME) from the test files and from what the given
# imcap binary writes: a tiny model, a synthetic data set, batch outputs in
# every format, a checkpoint. Seeds are kept small: the fuzzer grows them.
set -euo pipefail
cd "$(dirname "$0")/.."
imcap=$(realpath "${1:?usage: scripts/fuzz_seeds.sh path/to/imcap}")
c=fuzz/corpus
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$c"
mkdir -p $c/fuzz_image $c/fuzz_model $c/fuzz_dataset $c/fuzz_results $c/fuzz_resume $c/fuzz_merge $c/fuzz_train

# images: one small file per format and PNG colour type the decoder knows
for f in tests/data/images/*; do
  case "$f" in *.rgb | *.txt) continue ;; esac
  [ "$(stat -c %s "$f")" -le 4096 ] && cp "$f" $c/fuzz_image/
done

# models: tiny ones of each encoder layout (a shipped model is 3.8 MB)
for cfg in tiny_config tiny_grid1 tiny_nocoords tiny_stride2; do
  "$imcap" init --config tests/data/models/$cfg.json --vocab tests/data/models/tiny_words.txt \
    -o $c/fuzz_model/$cfg.safetensors 2>/dev/null
done

# data sets: the test ones and a synthetic one (with "objects" and "mentions")
cp tests/data/eval/karpathy_small.json tests/data/eval/coco_small.json $c/fuzz_dataset/
"$imcap" synth --count 4 --seed 7 --size 32 -o "$work/synth" -j 1 2>/dev/null
cp "$work/synth/dataset.json" $c/fuzz_dataset/synth4.json

# COCO results
cp tests/data/eval/results_small.json $c/fuzz_results/
printf '[{"image_id": "COCO_val2014_000000000101.jpg", "caption": "a man on a horse"}]' >$c/fuzz_results/by_name.json

# batch outputs in every format and layout; merge shards from two halves
imgs=(tests/data/images/rgb.bmp tests/data/images/grey8.png tests/data/images/bits.pbm tests/data/images/manifest.txt)
for fmt in jsonl csv tsv; do
  for timing in "" --no-timing; do
    name=batch${timing:+_notiming}.$fmt
    "$imcap" batch --format $fmt $timing -j 1 -q -o "$work/$name" "${imgs[@]}" 2>/dev/null || true
    cp "$work/$name" $c/fuzz_resume/
    # an interrupted run: the last record cut short
    head -c -7 "$work/$name" >$c/fuzz_resume/cut_$name
    "$imcap" batch --format $fmt $timing -j 1 -q --shard 1/2 -o "$work/a.$fmt" "${imgs[@]}" 2>/dev/null || true
    "$imcap" batch --format $fmt $timing -j 1 -q --shard 2/2 -o "$work/b.$fmt" "${imgs[@]}" 2>/dev/null || true
    { cat "$work/a.$fmt"; printf '@@shard\n'; cat "$work/b.$fmt"; } >$c/fuzz_merge/shards${timing:+_notiming}.$fmt
  done
done

# training: the configs, and a checkpoint's header JSON (step, options)
cp tests/data/models/*.json models/*_config.json $c/fuzz_train/
"$imcap" train --data "$work/synth/dataset.json" --images "$work/synth" --config tests/data/models/tiny_config.json \
  -o "$work/t.safetensors" --max-steps 1 --batch 2 -j 1 -q 2>/dev/null || true
python3 - "$work/t.safetensors.ckpt" $c/fuzz_train/checkpoint_header.json <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', d[8:16])[0]
open(sys.argv[2], 'wb').write(d[16:16 + n].rstrip(b' '))
PY
du -sh $c
