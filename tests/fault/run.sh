#!/usr/bin/env bash
# tests/fault/run.sh IMCAP SHIM SOURCE_ROOT WORKDIR — the allocation-failure
# test: for each of four jobs (a caption as JSON, a batch record, an HTML
# page with its overlays, a model's info) it counts the allocations the
# program's code makes, then reruns the job once per allocation with that
# one failing (the LD_PRELOAD shim tests/fault/failalloc.c). Every run must
#   - exit 0, 1, 2 or 3 (never a crash or an abort);
#   - when it exits 0: give exactly the outputs of the run without failures;
#   - when it fails: say so on stderr, and leave no half-written output:
#     batch's OUT is whole (an error record for the image that failed, exit
#     1) or absent (exit 3), attend's files are each the reference's or
#     absent.
# Leaks are the sanitizer build's job; a sanitizer build cannot take the
# shim, and this test says so and passes.
set -uo pipefail
exe=$1 shim=$2 src=$3 work=$4
if ldd "$exe" | grep -q libasan; then
  echo "failalloc: sanitizer build: the LD_PRELOAD shim cannot go before ASan's runtime; run in the release build"
  exit 0
fi
rm -rf "$work" && mkdir -p "$work"
img="$src/samples/scene_00.png"
model="$src/models/default.safetensors"
export IMCAP_MODEL="$model" OMP_NUM_THREADS=1

# stdout names the output folder: compared with the folder's name taken out
normalise() { [ -f "$2/stdout" ] && sed -i "s#$2/#OUT/#" "$2/stdout"; true; }

job() { # job NAME OUTDIR -> runs the job writing into OUTDIR (stdout in OUTDIR/stdout)
  local name=$1 out=$2
  mkdir -p "$out"
  case "$name" in
    caption) "$exe" caption --json -j 1 "$img" >"$out/stdout" ;;
    batch) "$exe" batch -q --no-timing -j 1 -o "$out/records.jsonl" "$img" >"$out/stdout" ;;
    attend) "$exe" attend --max-side 64 --tile 48 -o "$out/att" "$img" >"$out/stdout" ;;
    info) "$exe" info --json >"$out/stdout" ;;
  esac
}

total=0
for name in caption batch attend info; do
  ref="$work/$name-ref"
  job "$name" "$ref" 2>"$work/err" || { echo "failalloc: $name fails without any injected failure:"; cat "$work/err"; exit 1; }
  normalise "$name" "$ref"
  n=$(IMCAP_FAIL_COUNT=1 LD_PRELOAD="$shim" job "$name" "$work/$name-count" 2>&1 >/dev/null | sed -n 's/^failalloc: \([0-9]*\) allocations$/\1/p')
  [ -n "$n" ] && [ "$n" -gt 0 ] || { echo "failalloc: the shim counted no allocations for $name"; exit 1; }
  injected=0 survived=0 refused=0 tried=0
  # attend's runs are slow (it renders and encodes twenty images): its
  # loading and captioning, which the caption job already fails one
  # allocation at a time, are sampled every 5th; its last 300 allocations
  # (rendering, the page, the file names) are each failed
  step=1
  [ "$name" = attend ] && step=5
  for ((k = 1; k <= n; k += (k > n - 300 ? 1 : step))); do
    tried=$((tried + 1))
    run="$work/$name-run"
    rm -rf "$run"
    IMCAP_FAIL_AT=$k LD_PRELOAD="$shim" job "$name" "$run" 2>"$work/err"
    rc=$?
    normalise "$name" "$run"
    grep -q '^failalloc: failed allocation' "$work/err" && injected=$((injected + 1))
    if [ "$rc" -gt 3 ]; then
      echo "failalloc: $name with allocation $k failing: exit $rc (a crash or an abort)"; cat "$work/err"; exit 1
    fi
    if [ "$rc" -eq 0 ]; then
      if ! diff -r "$ref" "$run" >/dev/null; then
        echo "failalloc: $name with allocation $k failing: exit 0 but its outputs differ from the reference"
        diff -r "$ref" "$run" | head -5; exit 1
      fi
      survived=$((survived + 1))
    else
      grep -v '^failalloc:' "$work/err" | grep -q . || { echo "failalloc: $name, allocation $k: exit $rc with no message"; exit 1; }
      if [ "$name" = batch ]; then
        # exit 1: an image failed, and OUT is whole: every image's record,
        # the failed one an error record; exit 3: no OUT at all
        if [ "$rc" -eq 1 ]; then
          [ -e "$run/records.jsonl" ] || { echo "failalloc: batch, allocation $k: exit 1 without OUT"; exit 1; }
          [ "$(wc -l <"$run/records.jsonl")" = "$(wc -l <"$ref/records.jsonl")" ] ||
            { echo "failalloc: batch, allocation $k: OUT does not hold one record per image"; exit 1; }
          while IFS= read -r line; do
            grep -qxF -- "$line" "$ref/records.jsonl" || grep -q '"error": ' <<<"$line" ||
              { echo "failalloc: batch, allocation $k: a record is neither the reference's nor an error: $line"; exit 1; }
          done <"$run/records.jsonl"
        else
          [ ! -e "$run/records.jsonl" ] || { echo "failalloc: batch, allocation $k: exit $rc but OUT was written"; exit 1; }
        fi
      fi
      if [ -d "$run/att" ]; then
        for f in "$run"/att/*; do
          [ -e "$f" ] || continue
          cmp -s "$f" "$ref/att/$(basename "$f")" || { echo "failalloc: attend, allocation $k: $(basename "$f") is not the reference's"; exit 1; }
        done
      fi
      refused=$((refused + 1))
    fi
  done
  echo "failalloc: $name: $n allocations, $tried of them failed in turn: $survived runs still succeeded with the reference outputs, $refused failed cleanly ($injected injected)"
  total=$((total + tried))
done
echo "failalloc: $total runs, no crash, no partial output reported as success"
