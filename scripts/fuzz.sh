#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS] — runs every libFuzzer harness (fuzz/) for SECONDS
# each (default 60), two at a time (the machine has two cores), in the
# clang + ASan + UBSan build build-fuzz/ (configured and built when needed).
#
# Each harness starts from its committed seeds (fuzz/corpus/NAME) and the
# inputs of past findings (tests/data/fuzz-regressions/NAME), neither ever
# written, plus what earlier runs found (build-fuzz/fuzz-out/corpus/NAME).
# Exits non-zero when any harness reports a crash, leak, timeout, running out
# of memory or a sanitizer error, naming the harness, its log and the
# reproducer (rerun it with: build-fuzz/fuzz/NAME REPRODUCER).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
case "$secs" in '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS]" >&2; exit 2 ;; esac
build=build-fuzz
out=$build/fuzz-out

if [ ! -f $build/build.ninja ]; then
  # -O1: most of the speed, and stack traces that still match the source;
  # b_lundef=false: the ASan shared library leaves the runtime to the program
  CC=clang meson setup $build -Dfuzz=true -Dtests=disabled --buildtype=debug -Doptimization=1 -Db_lundef=false >/dev/null
fi
ninja -C $build -j2 >/dev/null

# name and the largest input worth trying: above the seeds' sizes, but small
# enough that the fuzzer mutates structure rather than bulk bytes
harnesses=(
  "fuzz_image 65536"
  "fuzz_model 32768"
  "fuzz_dataset 16384"
  "fuzz_results 8192"
  "fuzz_resume 8192"
  "fuzz_merge 16384"
  "fuzz_train 8192"
)

run_one() {
  local name=$1 max_len=$2
  local corpus=$out/corpus/$name artifacts=$out/artifacts/$name log=$out/logs/$name.log
  rm -rf "$artifacts"
  mkdir -p "$corpus" "$artifacts" "$out/logs"
  # -timeout: no single input may take 10 s (the largest image the limits
  # allow decodes in about a second here); -rss_limit_mb also bounds any one
  # allocation (malloc_limit_mb defaults to it); stdout is closed (the
  # results writer under test prints there), stderr is kept: it carries the
  # fuzzer's and sanitizers' reports and a harness's reason for aborting.
  # the regressions go first, so an old finding that returns fails at once
  local seeds=("fuzz/corpus/$name")
  [ -d "tests/data/fuzz-regressions/$name" ] && seeds+=("tests/data/fuzz-regressions/$name")
  local rc=0
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$build/fuzz/$name" -max_total_time="$secs" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
    -close_fd_mask=1 -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$corpus" "${seeds[@]}" >"$log" 2>&1 || rc=$?
  echo "$rc" >"$out/logs/$name.rc"
}

start=$(date +%s)
pids=()
for h in "${harnesses[@]}"; do
  # at most two harnesses at once
  while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n || true; done
  run_one $h &
done
wait

status=0
printf '%-14s %12s %10s  %s\n' harness executions exec/s result
for h in "${harnesses[@]}"; do
  set -- $h
  name=$1
  log=$out/logs/$name.log
  rc=$(cat "$out/logs/$name.rc" 2>/dev/null || echo missing)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  per_s=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  repro=$(find "$out/artifacts/$name" -type f 2>/dev/null | head -5)
  if [ "$rc" != 0 ] || [ -n "$repro" ]; then
    status=1
    printf '%-14s %12s %10s  %s\n' "$name" "${execs:-?}" "${per_s:-?}" "FAILED (exit $rc)"
    grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|SUMMARY' "$log" | sed 's/^/    /' || true
    echo "    log: $log"
    for r in $repro; do echo "    reproducer: $r  (rerun: $build/fuzz/$name $r)"; done
  else
    printf '%-14s %12s %10s  %s\n' "$name" "${execs:-?}" "${per_s:-?}" ok
  fi
done
echo "fuzz.sh: ${#harnesses[@]} harnesses, ${secs} s each, $(( $(date +%s) - start )) s in all"
exit $status
