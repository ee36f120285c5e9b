#!/usr/bin/env bash
# bench/run.sh — builds imcap (release) if needed, runs imcap-bench and writes
# bench/results.md. Arguments go to imcap-bench (e.g. --quick, --model M).
#   BUILD_DIR   build directory (default: build)
#   RESULTS     where to write the report (default: bench/results.md)
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}
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

tmp=$(mktemp "$RESULTS.tmp.XXXXXX")
trap 'rm -f "$tmp" "$tmp.table"' EXIT
rc=0
"$BUILD_DIR/bench/imcap-bench" --imcap "$BUILD_DIR/imcap" "$@" >"$tmp.table" || rc=$?
if [ "$rc" -ge 2 ]; then
  rm -f "$tmp.table"
  echo "bench/run.sh: imcap-bench failed (exit $rc); $RESULTS left as it was" >&2
  exit "$rc"
fi
{
  echo "# imcap benchmark results"
  echo
  echo "Command: \`bench/run.sh${*:+ $*}\` (BUILD_DIR=$BUILD_DIR, buildtype $buildtype) at commit $commit,"
  echo "run on $(date '+%Y-%m-%d %H:%M:%S %Z'). What the numbers mean: bench/README.md."
  if [ "$rc" -ne 0 ]; then
    echo
    echo "**Some measurements failed** (imcap-bench exit $rc): see the notes in the table."
  fi
  echo
  cat "$tmp.table"
} >"$tmp"
rm -f "$tmp.table"
mv "$tmp" "$RESULTS"
trap - EXIT
cat "$RESULTS"
echo "bench/run.sh: wrote $RESULTS" >&2
exit "$rc"
