#!/usr/bin/env bash
# Sets up imcap on Debian 12: installs the packages it needs (idempotent, no
# prompts), builds it in build/, and captions the images in samples/ with the
# shipped model. Options: --deps-only (install packages, nothing else),
# --test-deps (also what the test suite uses: browser, GNU parallel, numpy,
# PyTorch / torchvision for the backbone parity tests, slurm-wlm and munge
# for the one-node Slurm cluster of tests/slurm, LLVM's OpenMP runtime with
# Archer for the ThreadSanitizer build, and clang with libFuzzer
# (libclang-rt-14-dev) for scripts/fuzz.sh),
# --bench-deps (also what bench/run.sh's PyTorch comparison uses: Debian's
# python3-torch, python3-torchvision and python3-numpy, for /usr/bin/python3).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DEPS=(build-essential meson ninja-build pkg-config libopenblas-dev libcriterion-dev
            libcjson-dev libstb-dev libdeflate-dev libutf8proc-dev fonts-dejavu-core help2man
            libopenmpi-dev openmpi-bin)
# libomp-14-dev: LLVM's OpenMP runtime and its Archer tool for the TSan build;
# clang, libclang-rt-14-dev (libFuzzer) and libomp-dev for the fuzz build
TEST_DEPS=(chromium parallel python3-numpy python3-torch python3-torchvision
           slurm-wlm munge libomp-14-dev clang libclang-rt-14-dev libomp-dev)
BENCH_DEPS=(python3-torch python3-torchvision python3-numpy)

deps_only=0 test_deps=0 bench_deps=0
for a in "$@"; do
  case "$a" in
    --deps-only) deps_only=1 ;;
    --test-deps) test_deps=1 ;;
    --bench-deps) bench_deps=1 ;;
    *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

want=("${BUILD_DEPS[@]}")
[ "$test_deps" = 1 ] && want+=("${TEST_DEPS[@]}")
[ "$bench_deps" = 1 ] && want+=("${BENCH_DEPS[@]}")
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup.sh: installing ${missing[*]}" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ "$deps_only" = 1 ] && exit 0

[ -f build/build.ninja ] || meson setup build --buildtype=release >/dev/null
ninja -C build >/dev/null
shopt -s nullglob
samples=(samples/*.png samples/*.jpg)
if [ ${#samples[@]} -gt 0 ]; then
  ./build/imcap caption "${samples[@]}"
fi
