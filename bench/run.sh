#!/usr/bin/env bash
# bench/run.sh — the single command of the benchmark: builds imcap (release)
# in its own build directory, then runs bench/compare.py, which checks that
# PyTorch (bench/torch_ref.py) gives the same captions as imcap and times
# every row on both, rounds interleaved, and writes bench/results.md.
# Without PyTorch (scripts/setup.sh --bench-deps installs it) it runs imcap's
# rows only and says so.
#
#   bench/run.sh [--quick] [--rounds N] [--no-torch] [--folder-count N] [--verify-count N]
#
#   BUILD_DIR   build directory (default: build-bench; configured as release if missing)
#   RESULTS     the report (default: bench/results.md)
#   PYTHON      the Python that runs compare.py (default: /usr/bin/python3 when it
#               can import torch, Debian's python3-torch being installed for it)
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build-bench}
RESULTS=${RESULTS:-bench/results.md}

for tool in meson ninja; do
  command -v "$tool" >/dev/null || { echo "bench/run.sh: $tool not found (run scripts/setup.sh)" >&2; exit 2; }
done

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  echo "bench/run.sh: configuring $BUILD_DIR (release)" >&2
  meson setup "$BUILD_DIR" --buildtype=release >/dev/null
fi
# Timings of a debug or sanitizer build say nothing about the engine.
opts=$(meson introspect "$BUILD_DIR" --buildoptions)
setting() { python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == sys.argv[1]))' "$1" <<<"$opts"; }
buildtype=$(setting buildtype)
sanitize=$(setting b_sanitize)
if [ "$buildtype" != release ] || [ "$sanitize" != none ]; then
  echo "bench/run.sh: $BUILD_DIR is buildtype=$buildtype, b_sanitize=$sanitize; reconfiguring it as release" >&2
  meson configure "$BUILD_DIR" -Dbuildtype=release -Db_sanitize=none >/dev/null
  buildtype=release
fi
echo "bench/run.sh: building imcap and imcap-bench in $BUILD_DIR" >&2
ninja -C "$BUILD_DIR" imcap bench/imcap-bench >/dev/null

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  commit="$commit + uncommitted changes"
fi

# A Python that can import torch: Debian's python3-torch lives in
# /usr/lib/python3/dist-packages, which only /usr/bin/python3 sees.
if [ -z "${PYTHON:-}" ]; then
  for p in /usr/bin/python3 python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import torch, numpy, PIL' 2>/dev/null; then PYTHON=$p; break; fi
  done
fi
extra=()
if [ -z "${PYTHON:-}" ]; then
  PYTHON=$(command -v python3 || echo /usr/bin/python3)
  echo "bench/run.sh: PyTorch is not installed (scripts/setup.sh --bench-deps): imcap's rows only" >&2
  extra+=(--no-torch)
fi

exec "$PYTHON" bench/compare.py --imcap "$BUILD_DIR/imcap" --bench "$BUILD_DIR/bench/imcap-bench" \
  --out "$RESULTS" --commit "$commit" --command "bench/run.sh${*:+ $*}" \
  --build-desc "BUILD_DIR=$BUILD_DIR, buildtype $buildtype" "${extra[@]}" "$@"
