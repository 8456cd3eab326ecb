#!/usr/bin/env bash
# A one-node SLURM cluster on this host for the tests of hydra/launcher=slurm.
#
#   scripts/slurm.sh start    install (Debian's slurmctld, slurmd, munge; first time), configure, start
#   scripts/slurm.sh stop     cancel the project's own jobs, stop the daemons this script started
#   scripts/slurm.sh status   exit 0 when the controller answers and the node takes jobs
#
# Idempotent and quick once installed. Root only. The node is this host (`hostname -s`) with all
# its CPUs in one partition, `debug`; no accounting database (sacct answers "disabled", which
# submitit tolerates: it sees a job end by its result file). Process tracking without cgroups,
# so it also runs inside containers.
#
# It touches only what is its own: it starts daemons only on the slurm.conf it wrote (a marker
# line heads it; a slurm.conf without it is the machine's, and start refuses to use it), `stop`
# cancels only the project's jobs (named `adaptnas-*`: conf/hydra/launcher/slurm.yaml names them
# so) and stops only the daemons it started, and the policy-rc.d it puts in place during the
# install (so that the packages start nothing) is removed, or the one that was there put back,
# on exit.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

STATE=$STATE_ROOT/slurm
CONF=${ADAPTNAS_SLURM_CONF:-/etc/slurm/slurm.conf}
export SLURM_CONF=$CONF  # scontrol, sinfo, squeue read the same file
MARK="# written by adaptnas scripts/slurm.sh"
NODE=$(hostname -s)
PARTITION=debug
JOB_PREFIX=adaptnas-

say() { echo "slurm: $*" >&2; }

install() {
  local missing=()
  for pkg in slurmctld slurmd slurm-client munge; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  [[ ${#missing[@]} == 0 ]] && return 0
  say "installing ${missing[*]} (first time)"
  # Never let the packages' own service scripts start anything: we start the daemons ourselves.
  apt_install "${missing[@]}"
}

ours() { [[ -f $CONF ]] && head -1 "$CONF" | grep -qF "$MARK"; }

configure() {
  if [[ -f $CONF ]] && ! ours; then
    say "$CONF exists and was not written by this script: not starting daemons on it"
    return 1
  fi
  local cpus
  cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc obeys OMP_NUM_THREADS
  mkdir -p "$(dirname "$CONF")"
  local d
  for d in "$STATE/spool" "$STATE/spool/ctld" "$STATE/spool/d" "$STATE/log"; do
    safe_dir "$d" root 700
  done
  local want
  want=$(cat <<EOF
$MARK: a one-node cluster for the tests
ClusterName=adaptnas
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldPort=6817
SlurmdPort=6818
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=60
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
)
  if [[ ! -f $CONF ]] || [[ $(cat "$CONF") != "$want" ]]; then
    echo "$want" >"$CONF"
    say "wrote $CONF (node $NODE, $cpus CPUs, partition $PARTITION)"
    # Daemons still running from before read the new file.
    scontrol reconfigure >/dev/null 2>&1 || true
  fi
}

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# kill_checked PIDFILE EXE USER: stop the process PIDFILE names, only when it runs EXE (after
# its links: /usr/sbin/slurmctld is an alternatives link to slurmctld-wlm) with USER as its real
# and effective uid; return 1 when nothing was stopped. munged.pid is munge's to write:
# unchecked, it could name any process, root's included.
kill_checked() {
  local pidfile=$1 exe user=$3 pid ran uids want_uid
  exe=$(readlink -f -- "$2") && want_uid=$(id -u "$user") || return 1
  # Read with a time limit (a FIFO planted there would block), and never echoed.
  pid=$(timeout 5 head -c 32 -- "$pidfile" 2>/dev/null | tr -d '[:space:]' || true)
  [[ $pid =~ ^[1-9][0-9]{0,9}$ ]] || { say "$pidfile holds no pid: nothing stopped"; return 1; }
  ran=$(readlink -- "/proc/$pid/exe" 2>/dev/null || true)
  uids=$(awk '/^Uid:/ {print $2, $3}' "/proc/$pid/status" 2>/dev/null || true)
  if [[ ${ran% (deleted)} != "$exe" || $uids != "$want_uid $want_uid" ]]; then
    say "$pidfile names pid $pid, which is not $exe run by $user: left alone"
    return 1
  fi
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
}

# The munge key that lets a process act as root in this cluster (SlurmUser=root). Made while
# /etc/munge is root's alone (so nothing munge planted there, a symlink or a hard link, is
# written through or handed over), under umask 077 (readable by no one else, not even for a
# moment), then given to munge, 0400; the folder goes back to munge, 0700, last.
munge_key() {
  local dir=/etc/munge key=/etc/munge/munge.key
  [[ ! -L $dir ]] || { say "$dir is a symlink; refusing"; return 1; }
  [[ -d $dir ]] || mkdir -m 700 -- "$dir"
  chown root:root -- "$dir" && chmod 700 -- "$dir"
  if [[ -L $key || ! -f $key || ! -s $key || $(stat -c %h -- "$key") != 1 ]]; then
    rm -f -- "$key"
    (
      umask 077
      if command -v mungekey >/dev/null; then mungekey --create --keyfile="$key"
      else dd if=/dev/urandom bs=1 count=1024 of="$key" status=none; fi
    )
  fi
  chown munge:munge -- "$key" && chmod 400 -- "$key" && chown munge:munge -- "$dir"
}

start_munge() {
  if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
  munge_key
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge
  runuser -u munge -- /usr/sbin/munged
  touch "$STATE/munged.ours"
  for _ in $(seq 50); do
    munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  say "munged does not answer"
  return 1
}

node_ready() {
  local state
  state=$(sinfo -h -n "$NODE" -o "%T" 2>/dev/null | head -1)
  [[ $state == idle* || $state == mixed* || $state == allocated* ]]
}

start() {
  [[ $(id -u) == 0 ]] || { say "needs root"; return 1; }
  install
  safe_dir "$STATE_ROOT" root 711
  safe_dir "$STATE" root 700
  configure
  start_munge
  ours || { say "$CONF is not ours: not starting daemons"; return 1; }
  if ! pid_alive "$STATE/slurmctld.pid"; then
    /usr/sbin/slurmctld -f "$CONF"
    touch "$STATE/slurmctld.ours"
  fi
  for _ in $(seq 100); do scontrol ping >/dev/null 2>&1 && break; sleep 0.2; done
  scontrol ping >/dev/null 2>&1 || { say "slurmctld does not answer; see $STATE/log/slurmctld.log"; return 1; }
  if ! pid_alive "$STATE/slurmd.pid"; then
    /usr/sbin/slurmd -f "$CONF"
    touch "$STATE/slurmd.ours"
  fi
  for _ in $(seq 150); do
    node_ready && break
    # A node left DOWN/DRAIN by an earlier run comes back once it answers again.
    scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
    sleep 0.2
  done
  node_ready || { say "node $NODE not ready ($(sinfo -h -o %T)); see $STATE/log/slurmd.log"; return 1; }
  say "up: partition $PARTITION on $NODE"
}

stop_daemon() {
  local name=$1 pidfile=$2
  [[ -f $STATE/$name.ours ]] || return 0
  if pid_alive "$pidfile" && kill_checked "$pidfile" "/usr/sbin/$name" root; then
    say "stopped $name"
  fi
  rm -f "$STATE/$name.ours"
}

# Cancel the jobs the project submitted (names `adaptnas-*`), on our own cluster only.
cancel_ours() {
  ours || return 0
  local ids
  ids=$(squeue -h -p "$PARTITION" -o '%i %j' 2>/dev/null \
    | awk -v p="$JOB_PREFIX" 'index($2, p) == 1 {print $1}' || true)
  [[ -n $ids ]] || return 0
  # shellcheck disable=SC2086  # one argument per job id
  scancel $ids >/dev/null 2>&1 || true
  say "cancelled the project's jobs: ${ids//$'\n'/ }"
}

stop() {
  [[ -d $STATE ]] || return 0
  cancel_ours
  stop_daemon slurmd "$STATE/slurmd.pid"
  stop_daemon slurmctld "$STATE/slurmctld.pid"
  if [[ -f $STATE/munged.ours ]]; then
    if kill_checked /run/munge/munged.pid /usr/sbin/munged munge; then say "stopped munged"; fi
    rm -f "$STATE/munged.ours"
  fi
}

status() { scontrol ping >/dev/null 2>&1 && node_ready; }

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
