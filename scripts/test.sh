#!/usr/bin/env bash
# Runs the whole test suite twice: in an optimised build (build/) and in an
# AddressSanitizer + UndefinedBehaviorSanitizer build (build-asan/); then the
# multi-threaded tests in a ThreadSanitizer build (build-tsan/); then every
# fuzz harness for 60 s (scripts/fuzz.sh, clang, build-fuzz/).
# Installs the packages the suite needs first (Debian 12).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --deps-only --test-deps
# real photographs for the in-domain test, from Debian packages (not installed)
./scripts/fetch_photos.sh build/photos ||
  echo "test.sh: no photographs fetched; test_domain's photograph case will skip and say so" >&2

[ -f build/build.ninja ] || meson setup build --buildtype=release >/dev/null
ninja -C build >/dev/null
meson test -C build --print-errorlogs --num-processes 1
# what `meson install` gives a user: pkg-config, a program built against the
# installed library, the soname, the exported symbols, man page, completion
./scripts/install_check.sh build

[ -f build-asan/build.ninja ] || meson setup build-asan --buildtype=debug -Db_sanitize=address,undefined \
  -Db_lundef=false >/dev/null
ninja -C build-asan >/dev/null
# leak checks on; abort on the first UB report so a test cannot pass over it.
# The Slurm cluster test (suite slurm) and the README's photo section (suite
# readme) ran in build/: they test the job script, the cluster and the README's
# commands, not imcap's memory, so they run once.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  meson test -C build-asan --print-errorlogs --num-processes 1 --timeout-multiplier 4 --no-suite slurm --no-suite readme

# ThreadSanitizer (docs/reliability.md): batch, eval and train with
# --threads 2, 8 threads captioning through the public API (test_threads), and
# a canary that proves TSan sees OpenMP's ordering and a planted race. The
# build links LLVM's libomp and its Archer tool (meson.build); tests/meson.build
# sets TSAN_OPTIONS (halt_on_error, report files). Zero reports is the bar.
[ -f build-tsan/build.ninja ] || meson setup build-tsan --buildtype=debugoptimized -Db_sanitize=thread \
  -Db_lundef=false >/dev/null
ninja -C build-tsan >/dev/null
rm -f build-tsan/tsan-report.*
tsan_rc=0
meson test -C build-tsan --print-errorlogs --num-processes 1 --timeout-multiplier 4 || tsan_rc=$?
if ls build-tsan/tsan-report.* >/dev/null 2>&1; then
  cat build-tsan/tsan-report.* >&2
  echo "test.sh: ThreadSanitizer reports above ($(ls build-tsan/tsan-report.* | wc -l) processes)" >&2
  exit 1
fi
[ "$tsan_rc" = 0 ] || exit "$tsan_rc"

# libFuzzer harnesses, 60 s each, two at a time: any crash, leak, timeout or
# sanitizer report (and any past finding that returns) fails the run
./scripts/fuzz.sh 60
