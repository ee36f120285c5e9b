#!/usr/bin/env bash
# scripts/install_check.sh [BUILD_DIR] — what `meson install` gives a user,
# checked from outside the project: installs BUILD_DIR (default build/) into
# a temporary DESTDIR, then
#   - pkg-config finds imcap there, and tests/install/consumer.c, compiled and
#     linked with its flags alone, loads the installed model and captions a
#     sample exactly as the installed CLI does;
#   - libimcap.so has a versioned soname and exports only imcap_* symbols;
#   - the man page and the bash completion are in place.
# Exit 0 when all holds; the first failure says what.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
fail() { echo "install_check: $*" >&2; exit 1; }

DESTDIR="$stage" meson install -C "$build" --no-rebuild --quiet >/dev/null
prefix=$(meson introspect "$build" --buildoptions | python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))')
root="$stage$prefix"
pc=$(find "$root" -name imcap.pc | head -1)
[ -n "$pc" ] || fail "no imcap.pc installed under $root"
export PKG_CONFIG_PATH=$(dirname "$pc")
# the .pc says $prefix; the files are under DESTDIR
flags=$(pkg-config --define-variable=prefix="$root" --cflags --libs imcap) || fail "pkg-config does not find imcap"
cc -std=c11 -Wall -Werror tests/install/consumer.c $flags -o "$stage/consumer" || fail "consumer.c does not build with: $flags"
lib=$(find "$root" -name 'libimcap.so.*.*' | head -1)
soname=$(objdump -p "$lib" | awk '/SONAME/{print $2}')
[ "$soname" = libimcap.so.1 ] || fail "soname is '$soname', not libimcap.so.1"
bad=$(nm -D --defined-only "$lib" | awk '$2 == "T" && $3 !~ /^imcap_/ {print $3}' | head -5)
[ -z "$bad" ] || fail "libimcap.so exports non-API symbols: $bad"
exported=$(nm -D --defined-only "$lib" | awk '$2 == "T"' | wc -l)
declared=$(grep -c '^IMCAP_API' include/imcap.h)
[ "$exported" -eq "$declared" ] || fail "libimcap.so exports $exported functions, include/imcap.h declares $declared"
model=$(find "$root" -name default.safetensors | head -1)
[ -n "$model" ] || fail "no model installed"
mkdir -p "$stage/render"
got=$(LD_LIBRARY_PATH=$(dirname "$lib") "$stage/consumer" "$model" samples/scene_00.png "$stage/render") || fail "the consumer failed"
[ -s "$stage/render/scene_00.html" ] && [ -s "$stage/render/scene_00_sheet.png" ] || fail "the consumer's rendering wrote no viewer or sheet"
want=$("$root/bin/imcap" caption --model "$model" samples/scene_00.png) || fail "the installed CLI failed"
[ "$got" = "$want" ] || fail "the library says '$got', the CLI '$want'"
[ -f "$root/share/man/man1/imcap.1" ] || fail "no man page at share/man/man1/imcap.1"
[ -f "$root/share/bash-completion/completions/imcap" ] || fail "no bash completion"
# the completion offers the commands and a command's options
words=$(bash -c 'source "$1"; PATH=$(dirname "$2"):$PATH; COMP_WORDS=(imcap cap); COMP_CWORD=1; _imcap; echo "${COMPREPLY[*]}";
  COMP_WORDS=(imcap caption --be); COMP_CWORD=2; _imcap; echo "${COMPREPLY[*]}"' _ \
  "$root/share/bash-completion/completions/imcap" "$root/bin/imcap")
grep -q '^caption$' <<<"$(head -1 <<<"$words")" || fail "completion of 'imcap cap' gave: $(head -1 <<<"$words")"
grep -q -- '--beam' <<<"$(tail -1 <<<"$words")" || fail "completion of 'imcap caption --be' gave: $(tail -1 <<<"$words")"
echo "install_check: pkg-config, libimcap.so.1 ($exported functions), consumer = CLI ('$got') and renders, man page, completion: ok"
