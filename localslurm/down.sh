#!/usr/bin/env bash
# Stops the local cluster started by localslurm/up.sh: the two slurmd, slurmctld
# and munged, each by the pid file it wrote under LOCALSLURM_DIR (never by name,
# so other Slurm daemons on this machine are left alone). Running jobs are
# cancelled first. Data under LOCALSLURM_DIR (fsx/, logs) is kept; LOCALSLURM_PURGE=1
# removes the cluster's state (config, spool, controller state) as well.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

: "${LOCALSLURM_DIR:=${ROOT}/.state/localslurm}"
: "${LOCALSLURM_STOP_TIMEOUT_S:=30}"
: "${LOCALSLURM_PURGE:=0}"

STATE=${LOCALSLURM_DIR}
CONF=${STATE}/etc/slurm.conf

log() { printf '[localslurm] %s\n' "$*"; }

# stop NAME PIDFILE: TERM, then KILL after the timeout; the pid file goes either way
stop() {
    local name=$1 pidfile=$2 pid
    if [[ ! -s "$pidfile" ]]; then
        return
    fi
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        local deadline=$((SECONDS + LOCALSLURM_STOP_TIMEOUT_S))
        while kill -0 "$pid" 2>/dev/null; do
            if ((SECONDS >= deadline)); then
                log "$name (pid $pid) ignored TERM for ${LOCALSLURM_STOP_TIMEOUT_S}s; killing it"
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.2
        done
        log "$name stopped (pid $pid)"
    fi
    rm -f "$pidfile"
}

if [[ -f "$CONF" && -s "${STATE}/run/slurmctld.pid" ]] && kill -0 "$(cat "${STATE}/run/slurmctld.pid")" 2>/dev/null; then
    # cancel jobs so their steps end before the slurmd that would clean them up
    if SLURM_CONF="$CONF" scancel --full --quiet --partition="$(sed -n 's/^PartitionName=\([^ ]*\).*/\1/p' "$CONF")"; then
        sleep 1
    fi
fi

for pidfile in "${STATE}"/run/slurmd-*.pid; do
    [[ -e "$pidfile" ]] || continue
    node=${pidfile##*/slurmd-}
    stop "slurmd ${node%.pid}" "$pidfile"
done
stop slurmctld "${STATE}/run/slurmctld.pid"
stop munged "${STATE}/munge/munged.pid"

if [[ "$LOCALSLURM_PURGE" == 1 ]]; then
    rm -rf "${STATE:?}/etc" "${STATE:?}/ctld" "${STATE:?}/spool" "${STATE:?}/run" "${STATE:?}/munge"
    log "state removed (kept: ${STATE}/fsx, ${STATE}/log)"
fi
log "cluster down"
