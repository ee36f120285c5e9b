#!/bin/sh
# tsan_canary.sh CANARY DIR — the ThreadSanitizer build's own check (see
# tests/tsan_canary.c): race-free OpenMP code gives no report (so Archer is
# loaded and libomp's synchronisation is seen), and a planted race gives one,
# written under DIR, naming tsan_canary.c. Run by meson in build-tsan only.
set -u
exe=$1 dir=$2
rm -rf "$dir" && mkdir -p "$dir" || exit 1
opts="halt_on_error=1 ignore_noninstrumented_modules=1 log_path=$dir/report"

TSAN_OPTIONS="$opts" "$exe" >/dev/null
rc=$?
if [ "$rc" -ne 0 ] || ls "$dir"/report.* >/dev/null 2>&1; then
  echo "tsan_canary: race-free OpenMP code: exit $rc, reports:" >&2
  cat "$dir"/report.* >&2 2>/dev/null
  exit 1
fi

TSAN_OPTIONS="$opts" "$exe" race >/dev/null
rc=$?
if [ "$rc" -ne 66 ] || ! grep -q "data race" "$dir"/report.* 2>/dev/null ||
   ! grep -q "tsan_canary.c" "$dir"/report.* 2>/dev/null; then
  echo "tsan_canary: the planted race was not reported (exit $rc)" >&2
  cat "$dir"/report.* >&2 2>/dev/null
  exit 1
fi
rm -rf "$dir"
echo "tsan_canary: no report on race-free OpenMP code; the planted race reported"
