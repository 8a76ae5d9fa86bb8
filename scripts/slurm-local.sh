#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, as a user would set one up on a workstation (Debian packages
# `slurm-wlm` and `munge`): `start` installs what is missing (as root, with apt), writes a slurm.conf for this host
# and starts munged, slurmctld and slurmd; `stop` stops them by their pid files; `status` says whether it answers.
# The e2e tests that claim Slurm works (`tests/e2e/slurm.rs`) run against it. Facts this relies on:
# ../shared/notes/slurm-local.md.
set -euo pipefail

STATE=/var/tmp/e3pipe-slurm
CONF=/etc/slurm/slurm.conf

ensure_packages() {
    if command -v sbatch >/dev/null && command -v munged >/dev/null; then
        return
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "slurm-local: sbatch or munged is missing; install the Debian packages slurm-wlm and munge" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 || {
        apt-get update -q >/dev/null 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
    }
}

answers() {
    timeout 5 sinfo -h -o '%T' 2>/dev/null | grep -Eq 'idle|mixed|allocated|completing'
}

start() {
    if answers; then
        echo "slurm-local: already running"
        return
    fi
    ensure_packages
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(( $(free -m | awk '/^Mem:/ {print $2}') * 8 / 10 ))
    mkdir -p "$STATE"/{state,spool,log} /etc/slurm /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        mungekey -c -f >/dev/null 2>&1 || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
    fi
    chown munge:munge /etc/munge/munge.key /run/munge
    chmod 400 /etc/munge/munge.key
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        su -s /bin/sh munge -c /usr/sbin/munged
    fi
    # Dummy GPU devices for Slurm's gres plugin (character devices with NVIDIA's major number; nothing opens them).
    for i in 0 1; do
        [ -e /dev/nvidia$i ] || mknod /dev/nvidia$i c 195 $i
    done
    cat >/etc/slurm/gres.conf <<EOF
AutoDetect=off
NodeName=$host Name=gpu Type=h200 File=/dev/nvidia[0-1]
EOF
    cat >"$CONF" <<EOF
ClusterName=e3pipe-local
GresTypes=gpu
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MaxArraySize=1001
NodeName=$host CPUs=$cpus RealMemory=$mem Gres=gpu:h200:2 State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    slurmctld
    slurmd
    for _ in $(seq 1 50); do
        if answers; then
            echo "slurm-local: running (node $host, $cpus CPUs)"
            return
        fi
        sleep 0.2
    done
    scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
    answers || { echo "slurm-local: did not come up; see $STATE/log" >&2; exit 1; }
    echo "slurm-local: running (node $host, $cpus CPUs)"
}

stop() {
    for pid in "$STATE"/slurmd.pid "$STATE"/slurmctld.pid; do
        [ -s "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
    done
    echo "slurm-local: stopped"
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
status) if answers; then echo "slurm-local: running"; else echo "slurm-local: not running"; exit 1; fi ;;
*) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
