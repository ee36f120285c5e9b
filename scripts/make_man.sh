#!/usr/bin/env bash
# scripts/make_man.sh IMCAP OUT — the man page imcap(1), made at build time by
# help2man from the binary's own help texts: `imcap --help`, `imcap --version`
# and every command's `imcap COMMAND --help` as a section, so the page never
# disagrees with the program.
set -euo pipefail
exe=$1 out=$2
inc=$(mktemp)
trap 'rm -f "$inc" "$out.tmp"' EXIT
{
  echo "[COMMANDS]"
  for cmd in $("$exe" --help | awk '/^commands:/{on=1; next} on && /^  [a-z]/{print $1} on && /^$/{exit}'); do
    echo ".SS $cmd"
    echo ".nf"
    "$exe" "$cmd" --help | sed -e 's/\\/\\e/g' -e 's/^\./\\\&./'
    echo ".fi"
  done
  echo "[ENVIRONMENT]"
  echo ".TP"
  echo ".B IMCAP_MODEL"
  echo "The model every command uses when none is given with \\-m/\\-\\-model."
  echo "[EXIT STATUS]"
  echo "0 all inputs done, 1 some inputs failed, 2 usage error, 3 fatal error (130 after Ctrl-C in train)."
} > "$inc"
help2man --no-info --no-discard-stderr --name "image captioning with soft attention" \
  --include "$inc" --output "$out.tmp" "$exe"
mv "$out.tmp" "$out"
