#!/usr/bin/env bash
# Data-parallel `imcap train` under MPI (issue 13): two ranks write weights
# byte-identical to one process with the same --grad-shards; each rank does
# half of every batch; --resume works under MPI and with another number of
# processes; a rank that dies ends the job, never a hang.
# usage: run.sh IMCAP WORKDIR MPI_BUILT(yes|no)
set -euo pipefail
IMCAP=$1 WORK=$2 BUILT=$3
HERE=$(cd "$(dirname "$0")" && pwd)
if [ "$BUILT" != yes ]; then echo "SKIP: imcap was built without MPI (libopenmpi-dev missing)"; exit 77; fi
if ! command -v mpirun >/dev/null; then echo "SKIP: no mpirun (openmpi-bin)"; exit 77; fi
# OpenMPI's own start-up allocations are never freed; imcap's are leak-checked
# by the single-process runs of the same code in every other test
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(timeout 300 mpirun --allow-run-as-root --oversubscribe)
fail() { echo "FAIL: $*" >&2; exit 1; }

rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
"$IMCAP" synth --count 120 --seed 4 -o syn >/dev/null
cat > cfg.json <<'CFG'
{"image_size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "encoder": [
 {"type": "conv", "out": 8, "kernel": 3, "stride": 1, "pad": 1}, {"type": "relu"},
 {"type": "maxpool", "kernel": 2, "stride": 2}, {"type": "conv", "out": 16, "kernel": 3, "stride": 1, "pad": 1},
 {"type": "relu"}, {"type": "maxpool", "kernel": 2, "stride": 2}, {"type": "coords"}],
 "embed_dim": 16, "hidden_dim": 32, "attention_dim": 16, "max_length": 16}
CFG
# the same argv everywhere (the command is in the model's metadata), run in
# separate folders
T=(train --data ../syn/dataset.json --images ../syn --config ../cfg.json --batch 8 --max-steps 12 --val-every 6
   --val-images 8 --ckpt-every 3 --threads 1 --grad-shards 2 --seed 5 -o m.safetensors)
same() { cmp "$1/m.safetensors" "$2/m.safetensors" && cmp "$1/m.safetensors.ckpt" "$2/m.safetensors.ckpt" ||
         fail "$3: $1 and $2 differ"; }

echo "== one process against two ranks"
mkdir one two
(cd one && "$IMCAP" "${T[@]}" 2>log) || fail "single process: $(tail -3 one/log)"
(cd two && "${MPIRUN[@]}" -np 2 "$IMCAP" "${T[@]}" 2>log) || fail "mpirun -np 2: $(tail -5 two/log)"
same one two "two ranks"
echo "two ranks: model and checkpoint byte-identical to one process"

echo "== each rank does its share"
# 12 steps x 8 examples, 2 shards: 48 examples per rank
for r in 0 1; do
  n=$(sed -n "s/^imcap train: rank $r of 2: \([0-9]*\) examples.*/\1/p" two/log)
  [ "$n" = 48 ] || fail "rank $r computed '${n:-nothing}' examples, not 48 of 96: $(grep rank two/log)"
done
grep "rank . of 2" two/log
# rank 0 alone reports
n_done=$(grep -c "done at step 12" two/log || true)
[ "$n_done" = 1 ] || fail "expected one 'done' line (rank 0's), got $n_done"

echo "== a frozen encoder: rank 0 builds the feature cache, the others read it"
F=(train --data ../syn/dataset.json --images ../syn --init ../one/m.safetensors --freeze-encoder --batch 8
   --max-steps 6 --val-every 6 --val-images 8 --threads 1 --grad-shards 2 --seed 5 -o f.safetensors)
mkdir frozen-one frozen-two
(cd frozen-one && "$IMCAP" "${F[@]}" 2>log) || fail "frozen, one process: $(tail -3 frozen-one/log)"
(cd frozen-two && "${MPIRUN[@]}" -np 2 "$IMCAP" "${F[@]}" 2>log) || fail "frozen, two ranks: $(tail -5 frozen-two/log)"
cmp frozen-one/f.safetensors frozen-two/f.safetensors || fail "frozen encoder: two ranks differ from one process"
cmp frozen-one/f.safetensors.features frozen-two/f.safetensors.features || fail "the feature caches differ"
[ "$(grep -c "built feature cache" frozen-two/log)" = 1 ] && ! grep -q "rebuilt the feature cache" frozen-two/log ||
  fail "the feature cache was not built exactly once: $(cat frozen-two/log)"
echo "frozen encoder: two ranks = one process; one feature cache, built by rank 0"

echo "== resume under MPI, and with another number of processes"
# --resume takes the checkpoint instead of --config: the command line in the
# metadata differs, so the tensors are compared
R=(train --data ../syn/dataset.json --images ../syn --resume m.safetensors.ckpt --batch 8 --max-steps 12
   --val-every 6 --val-images 8 --ckpt-every 3 --threads 1 --grad-shards 2 --seed 5 -o m.safetensors)
run() { if [ "$1" = 1 ]; then "$IMCAP" "${@:2}"; else "${MPIRUN[@]}" -np "$1" "$IMCAP" "${@:2}"; fi; }
for how in "2 2" "2 1" "1 2"; do
  set -- $how
  d=resume-$1-$2 && mkdir $d
  rc=0; (cd $d && run $1 "${T[@]}" --stop-after 7 2>log1) || rc=$?
  [ $rc = 130 ] || fail "$d: the interrupted run exited $rc, not 130: $(tail -3 $d/log1)"
  (cd $d && run $2 "${R[@]}" 2>log2) || fail "$d: resume: $(tail -3 $d/log2)"
  for f in m.safetensors m.safetensors.ckpt; do
    python3 "$HERE/same_weights.py" one/$f $d/$f || fail "$d: $f differs from the uninterrupted run's"
  done
  echo "stopped at step 7 with $1 process(es), resumed with $2: the same weights and moments"
done

echo "== a rank that dies ends the job"
mkdir die
L=(train --data ../syn/dataset.json --images ../syn --config ../cfg.json --batch 8 --max-steps 100000 --val-every 100000
   --threads 1 --seed 5 -q -o m.safetensors)
(cd die && exec timeout 120 mpirun --allow-run-as-root --oversubscribe -np 2 "$IMCAP" "${L[@]}" >log 2>&1) &
job=$!
victim=
for _ in $(seq 300); do
  for p in $(pgrep -f "imcap train" || true); do
    if tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" &&
       grep -q "m.safetensors" /proc/$p/cmdline 2>/dev/null && [ -e die/m.safetensors.cache ]; then victim=$p; fi
  done
  [ -n "$victim" ] && break
  sleep 0.1
done
[ -n "$victim" ] || { kill $job 2>/dev/null; fail "rank 1 never started"; }
sleep 1
kill -9 "$victim"
rc=0; wait $job || rc=$?
[ $rc != 0 ] || fail "mpirun exited 0 after rank 1 was killed"
[ $rc != 124 ] || fail "the job hung after rank 1 was killed (timeout)"
grep -qi "signal 9\|killed\|exited on signal\|aborted" die/log || fail "no message about the dead rank: $(tail -5 die/log)"
echo "rank 1 killed: mpirun exited $rc with: $(grep -i -m1 'signal\|killed\|abort' die/log)"
echo "PASS"
