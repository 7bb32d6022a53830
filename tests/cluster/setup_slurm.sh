#!/usr/bin/env bash
# Install and start a single-node SLURM on this machine, for tests/cluster/test_slurm.py.
#
#   sudo tests/cluster/setup_slurm.sh        # or as root, e.g. from .ci/run
#
# Debian/Ubuntu only (apt). Idempotent: a second run reuses the packages, rewrites the
# configuration, restarts only what is not running or whose configuration changed, and
# ends with the same checks (node idle, a trivial `sbatch --wrap hostname` completes).
#
# The cluster: one node (the local host, `hostname -s`, CPUs and memory as `slurmd -C`
# reports them), one partition `debug` (Default=YES, no time limit), no cgroups
# (proctrack/linuxproc, task/none: works in containers), no accounting database
# (accounting_storage/none): the Snakemake SLURM executor reads job states with `squeue`
# (`slurm-status-command: squeue`), which needs MinJobAge well above its polling interval.
#
# Environment: SLURM_PARTITION (default debug), SLURM_SETUP_TIMEOUT (seconds, default 60).
set -euo pipefail

PARTITION="${SLURM_PARTITION:-debug}"
TIMEOUT="${SLURM_SETUP_TIMEOUT:-60}"
CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
STATE=/var/spool/slurmctld
SPOOL=/var/spool/slurmd
LOGS=/var/log/slurm
RUN=/run/slurm
CTLD_PID="$RUN/slurmctld.pid"
SLURMD_PID="$RUN/slurmd.pid"
MUNGE_PID=/run/munge/munged.pid

log() { printf '[setup_slurm] %s\n' "$*"; }
die() { printf '[setup_slurm] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts daemons)"

# Is the process whose id is in pid file $1 alive and running program $2?
running() {
    local pid
    [ -s "$1" ] || return 1
    pid="$(cat "$1")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    # guard against a recycled pid: the process must be the expected program
    grep -q "$2" "/proc/$pid/cmdline" 2>/dev/null
}

# Stop the daemon recorded in pid file $1 (only that process), wait until it is gone.
stop() {
    local pid i
    running "$1" "$2" || { rm -f "$1"; return 0; }
    pid="$(cat "$1")"
    log "stopping $2 (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    rm -f "$1"
}

# ---------------------------------------------------------------- packages
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || die "apt-get not found: install slurm-wlm and munge by hand"
    log "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # --no-install-recommends: skips the documentation and mail packages; slurm-wlm pulls
    # slurmctld, slurmd, slurm-client and the basic plugins.
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi
log "$(slurmd -V)"

# ---------------------------------------------------------------- munge
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge
install -d -o munge -g munge -m 0711 /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    log "creating the munge key"
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile=/etc/munge/munge.key --force
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! running "$MUNGE_PID" munged; then
    log "starting munged"
    rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_PID"
fi
for i in $(seq 50); do munge -n </dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
munge -n </dev/null | unmunge >/dev/null || die "munge does not work (see /var/log/munge/munged.log)"

# ---------------------------------------------------------------- slurm.conf
HOST="$(hostname -s)"
# "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105"
NODE_HW="$(slurmd -C | head -n 1)"
CPUS="$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$NODE_HW")"
MEM="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$NODE_HW")"
[ -n "$CPUS" ] && [ -n "$MEM" ] || die "could not read CPUs/RealMemory from 'slurmd -C': $NODE_HW"
# Leave some memory to the system; jobs asking more than this are refused at submission.
MEM=$((MEM * 95 / 100))

install -d -m 0755 "$CONF_DIR" "$LOGS" "$RUN"
install -d -m 0700 "$STATE" "$SPOOL"
NEW_CONF="$(mktemp)"
trap 'rm -f "$NEW_CONF"' EXIT
cat >"$NEW_CONF" <<EOF
# Written by tests/cluster/setup_slurm.sh: a single-node test cluster on $HOST.
ClusterName=local
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups (containers): plain /proc process tracking, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# no accounting database; the executor reads job states with squeue, so finished jobs
# must stay visible to squeue long enough (MinJobAge, seconds; the test also reads them
# back with scontrol after a whole workflow run)
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=3600
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
Waittime=0
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

CHANGED=0
if ! cmp -s "$NEW_CONF" "$CONF"; then
    log "writing $CONF (node $HOST: $CPUS CPUs, $MEM MB, partition $PARTITION)"
    install -m 0644 "$NEW_CONF" "$CONF"
    CHANGED=1
fi

# ---------------------------------------------------------------- daemons
if [ "$CHANGED" -eq 1 ]; then
    stop "$SLURMD_PID" slurmd
    stop "$CTLD_PID" slurmctld
fi
if ! running "$CTLD_PID" slurmctld; then
    log "starting slurmctld"
    # -c: clear saved state (jobs/node states of an earlier configuration); no daemons of
    # this cluster run now, so nothing is lost that matters to a test cluster.
    /usr/sbin/slurmctld -c
fi
for i in $(seq $((TIMEOUT * 5))); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
scontrol ping | grep -q UP || die "slurmctld does not answer (see $LOGS/slurmctld.log)"
if ! running "$SLURMD_PID" slurmd; then
    log "starting slurmd"
    /usr/sbin/slurmd
fi

# ---------------------------------------------------------------- wait for an idle node
state=""
for i in $(seq $((TIMEOUT * 2))); do
    state="$(sinfo -h -n "$HOST" -o '%T' 2>/dev/null | head -n 1)"
    case "$state" in
        idle|mixed|allocated|completing) break ;;
        down*|drain*|fail*)
            scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.5
done
case "$state" in
    idle|mixed|allocated|completing) ;;
    *) die "node $HOST is '$state', not idle (see $LOGS/slurmd.log, $LOGS/slurmctld.log)" ;;
esac
log "node $HOST is $state"

# ---------------------------------------------------------------- smoke job
OUT_DIR="$(mktemp -d)"
trap 'rm -f "$NEW_CONF"; rm -rf "$OUT_DIR"' EXIT
JOB="$(sbatch --parsable -p "$PARTITION" -t 1 --mem 50 -o "$OUT_DIR/%j.out" \
    -J setup-slurm-smoke --wrap hostname)"
JOB="${JOB%%;*}"
jstate=""
for i in $(seq $((TIMEOUT * 5))); do
    jstate="$(squeue -h -j "$JOB" --states=all -o '%T' 2>/dev/null | head -n 1)"
    case "$jstate" in
        COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL) break ;;
    esac
    sleep 0.2
done
[ "$jstate" = COMPLETED ] || die "smoke job $JOB is '$jstate' (see $LOGS/slurmd.log)"
grep -q "^$HOST" "$OUT_DIR/$JOB.out" \
    || die "smoke job $JOB printed '$(cat "$OUT_DIR/$JOB.out" 2>/dev/null)', not $HOST"
log "smoke job $JOB completed on $HOST: SLURM is ready (partition $PARTITION)"
