#!/usr/bin/env bash
# The README's Slurm job array, run for real: a one-node cluster
# (scripts/slurm_cluster.sh), 40 synthetic images, examples/slurm/caption_array.sbatch
# submitted as it is with `sbatch --wait` as a 4-task array of 1 CPU each, the
# shards merged with `imcap merge`, and the result compared byte for byte with
# one `imcap batch --no-timing` over the same folder (the shards' "ms" fields
# removed). One file is not an image: its task exits 1 (a record with an error),
# which the script must not count as a failed job. Also checks that the README shows that script word for word.
#
#   tests/slurm/test_slurm.sh IMCAP_EXE SOURCE_ROOT [WORK_DIR]
#
# Exit 0 passed, 1 failed, 77 skipped (the cluster cannot start here: the reason
# is printed; IMCAP_SLURM_REQUIRED=1 makes that a failure). Every wait has a
# timeout and the cluster is torn down on every exit path.
set -euo pipefail

say() { echo "test_slurm: $*" >&2; }
die() { say "FAIL: $*"; exit 1; }

[ $# -ge 2 ] || { say "usage: $0 IMCAP_EXE SOURCE_ROOT [WORK_DIR]"; exit 2; }
exe=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
src=$(cd "$2" && pwd)
script=$src/examples/slurm/caption_array.sbatch
tasks=4
t0=$(date +%s)
[ -x "$exe" ] || die "$exe is not an executable"
[ -f "$script" ] || die "$script is missing"

# 1. the README shows exactly these scripts: the bash block after each name
train_script=$src/examples/slurm/train_mpi.sbatch
for f in "$script" "$train_script"; do
  name=examples/slurm/$(basename "$f")
  readme_block=$(awk -v name="$name" 'index($0, name) { seen = 1 }
                      seen && /^```/ { if (inside) exit; inside = 1; next }
                      inside { print }' "$src/README.md")
  if [ "$readme_block" != "$(cat "$f")" ]; then
    diff <(printf '%s\n' "$readme_block") "$f" >&2 || true
    die "README.md's block is not $name word for word (diff above: < README, > file)"
  fi
done

# 2. the cluster
cluster=
work=
sbatch_pid=
cleanup() {
  local rc=$?
  [ -n "$sbatch_pid" ] && kill "$sbatch_pid" 2>/dev/null
  if [ -n "$cluster" ]; then
    "$src/scripts/slurm_cluster.sh" down "$cluster" || say "scripts/slurm_cluster.sh down $cluster failed"
  fi
  [ -n "$work" ] && [ -z "${KEEP_WORK:-}" ] && rm -rf -- "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 1' INT TERM HUP

if [ -n "${3:-}" ]; then
  rm -rf -- "$3"; mkdir -p "$3"; work=$(cd "$3" && pwd)
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/imcap-slurm-test.XXXXXX")
fi
up_rc=0
cluster=$("$src/scripts/slurm_cluster.sh" up 2>"$work/cluster-up.log") || up_rc=$?
cat "$work/cluster-up.log" >&2
if [ "$up_rc" -ne 0 ]; then
  cluster=
  [ "$up_rc" -ge 3 ] && [ "$up_rc" -le 7 ] && [ "${IMCAP_SLURM_REQUIRED:-0}" != 1 ] && {
    say "SKIP: no Slurm cluster on this machine (scripts/slurm_cluster.sh up exited $up_rc: see above)"
    exit 77
  }
  die "scripts/slurm_cluster.sh up exited $up_rc"
fi
export SLURM_CONF=$cluster/slurm.conf
say "cluster up in $(( $(date +%s) - t0 )) s"

# 3. the images, and imcap on PATH for the jobs (sbatch exports the environment)
"$exe" synth --count 40 --seed 5 -o "$work/synth" -j 2 2>"$work/synth.log" ||
  { cat "$work/synth.log" >&2; die "imcap synth failed"; }
printf 'not an image' >"$work/synth/images/broken.png"
n_images=41
PATH=$(dirname "$exe"):$PATH; export PATH
[ "$(command -v imcap)" = "$exe" ] || die "imcap on PATH is $(command -v imcap), not $exe"

# 4. the array: the README's script unchanged, 4 tasks of 1 CPU (the command
# line overrides its #SBATCH lines), PHOTOS and OUT as the README says
photos=$work/synth/images out=$work/out
sbatch_rc=0
timeout 180 sbatch --wait --quiet --array=1-$tasks --cpus-per-task=1 --time=5 \
    --chdir="$work" --output="$work/slurm-%A_%a.out" \
    --export=ALL,PHOTOS="$photos",OUT="$out" "$script" >"$work/sbatch.out" 2>&1 &
sbatch_pid=$!
wait "$sbatch_pid" || sbatch_rc=$?
sbatch_pid=
if [ "$sbatch_rc" -ne 0 ]; then
  cat "$work/sbatch.out" >&2
  for f in "$work"/slurm-*.out; do [ -f "$f" ] && { say "$f:"; cat "$f" >&2; }; done
  tail -n 20 "$cluster/log/slurmd.log" >&2 || true
  [ "$sbatch_rc" -eq 124 ] && die "sbatch --wait did not return in 180 s"
  die "sbatch --wait exited $sbatch_rc (the highest exit code of the array's tasks)"
fi
say "array of $tasks tasks done at $(( $(date +%s) - t0 )) s"

# every task wrote its shard, and the shards split the images
nonempty=0 total=0
for i in $(seq $tasks); do
  f=$out/shard-$i.jsonl
  [ -f "$f" ] || die "task $i wrote no $f (its log: $(cat "$work"/slurm-*_"$i".out 2>/dev/null))"
  n=$(wc -l <"$f")
  total=$((total + n))
  [ "$n" -gt 0 ] && nonempty=$((nonempty + 1))
done
[ "$total" -eq $n_images ] || die "the $tasks shards hold $total records, not $n_images"
errors=$(cat "$out"/shard-*.jsonl | grep -c '"error": ' || true)
[ "$errors" -eq 1 ] || die "the shards hold $errors error records, not 1 (broken.png)"
[ "$nonempty" -ge 2 ] || die "only $nonempty of $tasks shards have records: the array did not shard"

# 5. merge, and compare with one run
"$exe" merge -q -o "$out/all.jsonl" "$out"/shard-*.jsonl || die "imcap merge failed"
single_rc=0
"$exe" batch -r -q --no-timing -o "$work/single.jsonl" "$photos" 2>"$work/single.log" || single_rc=$?
[ "$single_rc" -eq 1 ] || { cat "$work/single.log" >&2; die "imcap batch (the single run) exited $single_rc, not 1 (broken.png)"; }
[ "$(wc -l <"$work/single.jsonl")" -eq $n_images ] ||
  die "the single run wrote $(wc -l <"$work/single.jsonl") records, not $n_images"
# the shards were timed: every record has one , "ms": NUMBER field (last, or before "error")
timed=$(grep -Ec ', "ms": [0-9.e+-]+[,}]' "$out/all.jsonl" || true)
[ "$timed" -eq $n_images ] || die "$timed of the $n_images merged records have an ms field (expected all)"
sed -E 's/, "ms": [0-9.e+-]+([,}])/\1/' "$out/all.jsonl" >"$work/merged-untimed.jsonl"
if ! cmp "$work/merged-untimed.jsonl" "$work/single.jsonl"; then
  diff "$work/merged-untimed.jsonl" "$work/single.jsonl" | head -n 10 >&2 || true
  die "the merged shards differ from one imcap batch run over $photos"
fi
say "array: $tasks Slurm array tasks merged = one run ($n_images records), at $(( $(date +%s) - t0 )) s"

# 6. data-parallel training inside an allocation: the README's script, two
# ranks of one thread, against one process with the same argv (the command
# is in the model's metadata) and the same --grad-shards
if ! command -v mpirun >/dev/null || ! grep -q "grad-shards" <("$exe" train --help 2>&1); then
  say "SKIP (training part): no mpirun or an imcap without MPI"
else
  cat >"$work/cfg.json" <<'CFG'
{"image_size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "encoder": [
 {"type": "conv", "out": 8, "kernel": 3, "stride": 1, "pad": 1}, {"type": "relu"},
 {"type": "maxpool", "kernel": 2, "stride": 2}, {"type": "coords"}],
 "embed_dim": 16, "hidden_dim": 32, "attention_dim": 16, "max_length": 16}
CFG
  args="--batch 8 --max-steps 10 --val-every 5 --val-images 4 --seed 3 -q"
  mkdir -p "$work/train-slurm" "$work/train-one"
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
  train_rc=0
  timeout 180 sbatch --wait --quiet --ntasks=2 --cpus-per-task=1 --time=5 --chdir="$work/train-slurm" \
      --output="$work/train-slurm/slurm-%j.out" \
      --export=ALL,DATA="$work/synth/dataset.json",IMAGES="$work/synth",CONFIG="$work/cfg.json",OUT=m.safetensors,SHARDS=2,TRAIN_ARGS="$args" \
      "$train_script" >"$work/train-sbatch.out" 2>&1 || train_rc=$?
  if [ "$train_rc" -ne 0 ]; then
    cat "$work/train-sbatch.out" "$work"/train-slurm/slurm-*.out >&2 || true
    die "the training job exited $train_rc"
  fi
  # shellcheck disable=SC2086
  (cd "$work/train-one" && "$exe" train --threads 1 --grad-shards 2 --data "$work/synth/dataset.json" \
      --images "$work/synth" --config "$work/cfg.json" -o m.safetensors $args 2>log) ||
    die "the single-process run failed: $(tail -3 "$work/train-one/log")"
  for f in m.safetensors m.safetensors.ckpt; do
    cmp "$work/train-slurm/$f" "$work/train-one/$f" || die "$f from the Slurm MPI job differs from one process's"
  done
  grep -h "rank . of 2" "$work"/train-slurm/slurm-*.out >&2 || die "the job's log does not show two ranks"
  say "training: 2 MPI ranks in a Slurm allocation = one process, byte for byte"
fi
say "PASS in $(( $(date +%s) - t0 )) s"
