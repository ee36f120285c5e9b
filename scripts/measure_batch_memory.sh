#!/usr/bin/env bash
# measure_batch_memory.sh — peak resident memory of `imcap batch` over N
# small images, for several N, to show that it does not grow with N (issue 6,
# point 7; issue 9): batch keeps the sorted list of paths, each thread's
# decoding block (--block images) and a window of records, never all the
# results.
#
# usage: scripts/measure_batch_memory.sh [-b BUILD_DIR] [-m MODEL] [-t THREADS] [-s SIZE] [N...]
#   N           image counts (default: 1000 10000)
#   -b DIR      build directory holding imcap (default: build; or $IMCAP)
#   -m MODEL    model file (default: models/default.safetensors when it exists,
#               else a random model from models/default_config.json with
#               tests/data/models/tiny_words60.txt, seed 1)
#   -t THREADS  --threads for imcap batch (default 2)
#   -s SIZE     image side in pixels for imcap synth (default 32)
#
# For each N: `imcap synth --count N --size SIZE --seed 1` makes the images,
# then `imcap batch --quiet -o OUT` runs under /usr/bin/time -v, which reports
# the peak RSS ("Maximum resident set size") of the process. Prints one
# Markdown table row per N. Everything is made under a temporary folder that
# is removed at the end. Run it on a quiet machine, or under `nice -n 19`.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
model=
threads=2
size=32
while getopts "b:m:t:s:h" opt; do
  case $opt in
    b) build=$OPTARG ;;
    m) model=$OPTARG ;;
    t) threads=$OPTARG ;;
    s) size=$OPTARG ;;
    h) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1000 10000)

imcap=${IMCAP:-$build/imcap}
[ -x "$imcap" ] || { echo "measure_batch_memory: no executable $imcap (build first, or pass -b / set IMCAP)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "measure_batch_memory: /usr/bin/time is missing (apt-get install time)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/imcap-batch-mem.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ -z "$model" ]; then
  if [ -f models/default.safetensors ]; then
    model=models/default.safetensors
  else
    model=$work/random.safetensors
    "$imcap" init --config models/default_config.json --vocab tests/data/models/tiny_words60.txt --seed 1 \
      -o "$model" >/dev/null
    echo "(random model: models/default_config.json, tests/data/models/tiny_words60.txt, seed 1)"
  fi
fi

echo "imcap batch --threads $threads, ${size}x${size} PNGs from imcap synth, model $(basename "$model")"
echo
echo "| images | peak RSS (MiB) | wall (s) | images/s | output (KiB) |"
echo "|---:|---:|---:|---:|---:|"
for n in "${counts[@]}"; do
  "$imcap" synth --count "$n" --size "$size" --seed 1 -o "$work/synth$n" >/dev/null 2>"$work/synth.err" ||
    { cat "$work/synth.err" >&2; exit 1; }
  out=$work/out$n.jsonl
  rc=0
  /usr/bin/time -v -o "$work/time$n.txt" "$imcap" batch --quiet --model "$model" --threads "$threads" \
    -o "$out" "$work/synth$n/images" || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "measure_batch_memory: imcap batch over $n images exited with $rc" >&2
    exit 1
  fi
  records=$(wc -l <"$out")
  [ "$records" -eq "$n" ] || { echo "measure_batch_memory: $records records for $n images" >&2; exit 1; }
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time$n.txt")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time$n.txt")
  # m:ss.ss or h:mm:ss -> seconds
  secs=$(echo "$wall" | awk -F: '{s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s}')
  awk -v n="$n" -v rss="$rss" -v s="$secs" -v kb="$(du -k "$out" | cut -f1)" \
    'BEGIN { printf "| %d | %.1f | %.2f | %.1f | %d |\n", n, rss / 1024, s, (s > 0 ? n / s : 0), kb }'
  rm -rf "$work/synth$n" "$out"
done
