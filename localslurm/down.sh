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

# stop PIDFILE...: TERM to all of them at once, KILL to any still there after the timeout
stop() {
    local pidfile pid
    local -A pids=()
    for pidfile in "$@"; do
        [[ -s "$pidfile" ]] || continue
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null; then
            pids[$pidfile]=$pid
        fi
    done
    local deadline=$((SECONDS + LOCALSLURM_STOP_TIMEOUT_S))
    for pidfile in "${!pids[@]}"; do
        pid=${pids[$pidfile]}
        while kill -0 "$pid" 2>/dev/null; do
            if ((SECONDS >= deadline)); then
                log "pid $pid ($pidfile) ignored TERM for ${LOCALSLURM_STOP_TIMEOUT_S}s; killing it"
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.1
        done
        log "stopped $(basename "$pidfile" .pid) (pid $pid)"
    done
    for pidfile in "$@"; do rm -f "$pidfile"; done
}

ctld_pidfile=${STATE}/run/slurmctld.pid
if [[ -f "$CONF" && -s "$ctld_pidfile" ]] && kill -0 "$(cat "$ctld_pidfile")" 2>/dev/null; then
    # cancel jobs first, so their steps end while slurmd is there to clean them up
    jobs=$(SLURM_CONF="$CONF" squeue -h -o %i 2>/dev/null || true)
    if [[ -n "$jobs" ]]; then
        log "cancelling jobs: $(tr '\n' ' ' <<<"$jobs")"
        # shellcheck disable=SC2086 # one job id per word
        SLURM_CONF="$CONF" scancel --full $jobs
        sleep 2
    fi
fi

# the Slurm daemons together, munged (which they authenticate with) last
stop "${STATE}"/run/slurmd-*.pid "$ctld_pidfile"
stop "${STATE}/munge/munged.pid"

if [[ "$LOCALSLURM_PURGE" == 1 ]]; then
    rm -rf "${STATE:?}/etc" "${STATE:?}/ctld" "${STATE:?}/spool" "${STATE:?}/run" "${STATE:?}/munge"
    log "state removed (kept: ${STATE}/fsx, ${STATE}/log)"
fi
log "cluster down"
