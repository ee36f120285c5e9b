#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests (Debian 12's slurm-wlm
# and munge, run as root, no systemd, no cgroups):
#
#   scripts/slurm_cluster.sh up [DIR]   start munged, slurmctld and slurmd with
#                                       all their state, sockets and logs under
#                                       DIR (default: a new mktemp -d), wait until
#                                       the node is idle, print DIR on stdout
#   scripts/slurm_cluster.sh down DIR   cancel the jobs, stop the three daemons
#                                       (by the pids in DIR) and remove DIR
#
# Clients find the cluster through SLURM_CONF=DIR/slurm.conf (sinfo, sbatch,
# srun...). Logs: DIR/log/{munged,slurmctld,slurmd}.log. The node is the
# machine as `slurmd -C` reports it (CPUs, sockets, cores, RealMemory), with
# select/cons_tres and CR_CPU, so 1-CPU jobs run side by side, one per CPU.
# MPI: MpiDefault=none; `srun --mpi=pmix` uses Slurm's mpi_pmix plugin (in
# Debian's slurm-wlm-basic-plugins). With Debian 12's OpenMPI 4.1.4 both
#   sbatch --wait -n 2 --wrap 'srun --mpi=pmix imcap train ...'
#   sbatch --wait -n 2 --wrap 'mpirun --allow-run-as-root --oversubscribe -np 2 imcap train ...'
# run two ranks (weights byte-identical to one process, as tests/mpi checks).
#
# Exit codes of `up` (the caller may skip a test on 3..7 and show the message):
#   0 up, 2 usage, 3 a program is missing (slurm-wlm / munge not installed),
#   4 munged did not start, 5 slurmctld did not start, 6 slurmd did not start,
#   7 the node did not become idle in time (SLURM_CLUSTER_TIMEOUT, default 60 s).
# On failure `up` prints the daemon's log tail, stops what it started and
# removes DIR.
set -euo pipefail

MARK=.imcap-slurm-cluster    # DIR is ours (down removes only such a DIR)
TIMEOUT=${SLURM_CLUSTER_TIMEOUT:-60}

say() { echo "slurm_cluster.sh: $*" >&2; }
usage() { say "usage: $0 up [DIR] | down DIR"; exit 2; }

log_tail() {   # the last lines of a log, to say why a daemon failed
  if [ -s "$1" ]; then
    say "last lines of $1:"
    tail -n 15 "$1" | sed 's/^/    /' >&2
  else
    say "$1 is empty or missing"
  fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid of a live daemon from its pid file, or nothing
live_pid() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1")
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

stop_pidfiles() {   # TERM to each, up to 10 s, then KILL
  local f pid pids=() i
  for f in "$@"; do
    pid=$(live_pid "$f") || continue
    kill -TERM "$pid" 2>/dev/null || true
    pids+=("$pid")
  done
  for i in $(seq 100); do
    for pid in ${pids[@]+"${pids[@]}"}; do kill -0 "$pid" 2>/dev/null && break; pid=; done
    [ -z "${pid:-}" ] && return 0
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || continue
    say "pid $pid did not stop on SIGTERM in 10 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  done
}

down() {
  local dir=$1 i
  [ -d "$dir" ] || { say "down: $dir does not exist (nothing to stop)"; return 0; }
  [ -f "$dir/$MARK" ] || { say "down: $dir is not a cluster made by this script (no $MARK): left alone"; return 2; }
  if [ -f "$dir/slurm.conf" ] && [ -n "$(live_pid "$dir/slurmctld.pid" || true)" ]; then
    # running jobs first, so no slurmstepd outlives slurmd
    SLURM_CONF="$dir/slurm.conf" timeout 10 scancel --full --quiet --user=root 2>/dev/null || true
    for i in $(seq 50); do
      [ -z "$(SLURM_CONF="$dir/slurm.conf" timeout 5 squeue -h -o %i 2>/dev/null || true)" ] && break
      sleep 0.2
    done
  fi
  stop_pidfiles "$dir/slurmd.pid" "$dir/slurmctld.pid"
  stop_pidfiles "$dir/munge/munged.pid"    # last: the others authenticate through it
  rm -rf -- "$dir"
}

up() {
  local dir=${1:-} p ctld_port d_port node_line node i state conf mpi
  [ "$(id -u)" -eq 0 ] || { say "needs root: slurmd starts jobs as their user, and SlurmUser is root here"; return 3; }
  for p in munged mungekey slurmctld slurmd sinfo sbatch scontrol squeue scancel timeout; do
    command -v "$p" >/dev/null || { say "$p not found (./scripts/setup.sh --deps-only --test-deps installs slurm-wlm and munge)"; return 3; }
  done
  if [ -z "$dir" ]; then
    dir=$(mktemp -d "${TMPDIR:-/tmp}/imcap-slurm.XXXXXX")
  else
    mkdir -p "$dir"
    [ -z "$(ls -A "$dir")" ] || { say "$dir is not empty"; return 2; }
  fi
  dir=$(cd "$dir" && pwd)
  chmod 700 "$dir"
  touch "$dir/$MARK"
  mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log"
  chmod 700 "$dir/munge"
  # every failure below: say why, stop what was started, remove DIR
  fail() { local rc=$1; shift; say "$*"; down "$dir" >/dev/null 2>&1 || true; return "$rc"; }

  # munge: a key made for this cluster if none is given (MUNGE_KEY=FILE)
  if [ -n "${MUNGE_KEY:-}" ]; then
    cp "$MUNGE_KEY" "$dir/munge/munge.key" || { fail 4 "cannot copy MUNGE_KEY=$MUNGE_KEY"; return; }
  else
    mungekey --create --keyfile="$dir/munge/munge.key" ||
      { fail 4 "mungekey could not create $dir/munge/munge.key"; return; }
  fi
  chmod 600 "$dir/munge/munge.key"
  if ! munged --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
         --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" \
         --seed-file="$dir/munge/munged.seed" </dev/null >>"$dir/log/munged.log" 2>&1; then
    log_tail "$dir/log/munged.log"; fail 4 "munged did not start"; return
  fi
  for i in $(seq 50); do [ -S "$dir/munge/munge.socket" ] && break; sleep 0.1; done
  if ! timeout 5 munge --socket="$dir/munge/munge.socket" -n </dev/null |
       timeout 5 unmunge --socket="$dir/munge/munge.socket" >/dev/null 2>&1; then
    log_tail "$dir/log/munged.log"; fail 4 "munged does not answer: a credential made on $dir/munge/munge.socket does not decode"; return
  fi

  # two free ports, 6817/6818 unless taken (another cluster on this machine)
  ctld_port=${SLURM_CLUSTER_PORT:-6817}
  for i in $(seq 20); do
    port_busy "$ctld_port" || port_busy "$((ctld_port + 1))" || break
    ctld_port=$((ctld_port + 2))
  done
  d_port=$((ctld_port + 1))

  # the node as slurmd sees it: NodeName=host CPUs=... RealMemory=...
  node_line=$(slurmd -C 2>/dev/null | grep -m1 '^NodeName=') ||
    { fail 6 "slurmd -C printed no NodeName line"; return; }
  node=${node_line#NodeName=}; node=${node%% *}
  conf="$dir/slurm.conf"
  mpi=none
  cat >"$conf" <<EOF
# generated by scripts/slurm_cluster.sh for $(hostname) ($(slurmd -V))
ClusterName=imcap
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups: processes tracked through /proc, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=$mpi
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
InactiveLimit=0
KillWait=5
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  # Slurm before 23.02 loads no cgroup plugin with the plugins above; from
  # 23.02 on it reads cgroup.conf, where CgroupPlugin=disabled exists
  case "$(slurmd -V | awk '{print $2}')" in
    2[0-2].*|1*) ;;
    *) echo "CgroupPlugin=disabled" >"$dir/cgroup.conf" ;;
  esac

  if ! slurmctld -f "$conf" </dev/null >>"$dir/log/slurmctld.start" 2>&1; then
    log_tail "$dir/log/slurmctld.start"; log_tail "$dir/log/slurmctld.log"
    fail 5 "slurmctld did not start"; return
  fi
  for i in $(seq $((TIMEOUT * 5))); do
    SLURM_CONF=$conf timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP' && break
    if [ "$i" -gt 10 ] && [ -z "$(live_pid "$dir/slurmctld.pid" || true)" ]; then break; fi
    sleep 0.2
  done
  if ! SLURM_CONF=$conf timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP'; then
    log_tail "$dir/log/slurmctld.start"; log_tail "$dir/log/slurmctld.log"
    fail 5 "slurmctld does not answer scontrol ping (port $ctld_port)"; return
  fi

  if ! slurmd -f "$conf" </dev/null >>"$dir/log/slurmd.start" 2>&1; then
    log_tail "$dir/log/slurmd.start"; log_tail "$dir/log/slurmd.log"
    fail 6 "slurmd did not start"; return
  fi
  for i in $(seq $((TIMEOUT * 5))); do
    state=$(SLURM_CONF=$conf timeout 5 sinfo -h -N -n "$node" -o %t 2>/dev/null || true)
    [ "$state" = idle ] && break
    if [ "$i" -gt 10 ] && [ -z "$(live_pid "$dir/slurmd.pid" || true)" ]; then
      log_tail "$dir/log/slurmd.start"; log_tail "$dir/log/slurmd.log"
      fail 6 "slurmd exited"; return
    fi
    sleep 0.2
  done
  if [ "$state" != idle ]; then
    log_tail "$dir/log/slurmd.log"; log_tail "$dir/log/slurmctld.log"
    SLURM_CONF=$conf timeout 5 scontrol show node "$node" >&2 || true
    fail 7 "node $node is '${state:-unknown}', not idle, after ${TIMEOUT} s"; return
  fi
  say "up: node $node idle ($(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node_line") CPUs), SLURM_CONF=$conf"
  echo "$dir"
}

case "${1:-}" in
  up) [ $# -le 2 ] || usage; up "${2:-}" ;;
  down) [ $# -eq 2 ] || usage; down "$2" ;;
  *) usage ;;
esac
