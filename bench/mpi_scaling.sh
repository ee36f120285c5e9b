#!/usr/bin/env bash
# bench/mpi_scaling.sh — data-parallel training: examples/s of one process
# against two MPI ranks, one thread each, the same --grad-shards (so the same
# work and the same weights), rounds interleaved; and the gradient bytes
# every step moves. Writes bench/mpi_results.md (RESULTS_MPI).
#
#   bench/mpi_scaling.sh [STEPS] [ROUNDS]      (default 60 steps, 3 rounds)
#
#   BUILD_DIR   build directory with an MPI-enabled imcap (default build-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-bench}
OUT=${RESULTS_MPI:-bench/mpi_results.md}
STEPS=${1:-60} ROUNDS=${2:-3}
IMCAP=$PWD/$BUILD_DIR/imcap
[ -x "$IMCAP" ] || { echo "mpi_scaling.sh: no $IMCAP (run bench/run.sh first)" >&2; exit 2; }
command -v mpirun >/dev/null || { echo "mpi_scaling.sh: no mpirun (scripts/setup.sh installs openmpi-bin)" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$IMCAP" synth --count 1200 --seed 9 -o "$work/syn" >/dev/null
# no validation until the last step, on one image
T=(train --data "$work/syn/dataset.json" --images "$work/syn" --config "$PWD/models/default_config.json" --batch 32 --val-every 1000000 --val-images 1 --ckpt-every 0 --threads 1 --grad-shards 2 --seed 1)
# the examples/s of the last progress line (rank 0's: the whole job's rate,
# the exchange between the ranks included)
rate() { sed -n 's/^step .* \([0-9.]*\) ex\/s ETA.*/\1/p' "$1" | tail -1; }
# build the image cache once, outside the timing
(cd "$work" && "$IMCAP" "${T[@]}" --max-steps 1 -o warm.safetensors --cache "$work/images.cache" >/dev/null 2>&1)
one=() two=()
for r in $(seq "$ROUNDS"); do
  (cd "$work" && "$IMCAP" "${T[@]}" --max-steps "$STEPS" -o one.safetensors --cache "$work/images.cache" 2>one.log)
  one+=("$(rate "$work/one.log")")
  (cd "$work" && mpirun --allow-run-as-root --oversubscribe -np 2 "$IMCAP" "${T[@]}" --max-steps "$STEPS" -o two.safetensors \
     --cache "$work/images.cache" 2>two.log)
  two+=("$(rate "$work/two.log")")
  echo "round $r: 1 process ${one[-1]} ex/s, 2 ranks ${two[-1]} ex/s" >&2
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
m1=$(median "${one[@]}") m2=$(median "${two[@]}")
floats=$(sed -n 's/.*vocabulary [0-9]*, \([0-9]*\) parameters.*/\1/p' "$work/one.log" | head -1)
same=$(python3 tests/mpi/same_weights.py "$work/one.safetensors" "$work/two.safetensors" 2>&1 && echo yes || echo no)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
{
  echo "# Data-parallel training: one process against two MPI ranks"
  echo
  echo "Command: \`bench/mpi_scaling.sh $STEPS $ROUNDS\` at commit $(git rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC')."
  echo "Machine: $cpu, $(nproc) cores; $(mpirun --version 2>/dev/null | head -1)."
  echo
  echo "The default model's architecture (models/default_config.json), batch 32, $STEPS steps on 1,200"
  echo "synthetic scenes, one thread per process, \`--grad-shards 2\` in both, so both do the same work"
  echo "and write the same weights (identical here: $same). Rate = rank 0's last progress line"
  echo "(examples/s since the first step, the exchange between the ranks included); median of $ROUNDS"
  echo "rounds, interleaved."
  echo
  echo "| processes x threads | examples/s (rounds) | median | speed-up |"
  echo "|---|---|---:|---:|"
  echo "| 1 x 1 | ${one[*]} | $m1 | 1.00 |"
  echo "| 2 x 1 (mpirun -np 2) | ${two[*]} | $m2 | $(python3 -c "print(f'{$m2/$m1:.2f}')") |"
  echo
  echo "Gradient per step: $floats floats = $(python3 -c "print(f'{$floats*4/1e6:.2f}')") MB. Each step, every rank but"
  echo "the last sends the running sum to the next (in 256 KB pieces) and the last broadcasts the"
  echo "total: with R ranks, (R - 1) + (R - 1) gradient-sized messages cross the network per step, one"
  echo "gradient's worth per link in each direction."
} > "$OUT"
cat "$OUT"
