#!/usr/bin/env bash
# Starts a real two-node Slurm cluster on this one machine, without systemd:
# its own munged (socket, key and state under LOCALSLURM_DIR), one slurmctld and
# two slurmd daemons (`slurmd -N nodeN`) that emulate two nodes. Every pid, log,
# spool and the rendered slurm.conf live under LOCALSLURM_DIR; ports are fixed
# but configurable, so it can run next to other Slurm daemons on the machine.
#
# Idempotent: a running cluster is reused, missing daemons are started (a node
# whose slurmd comes back returns to service by itself: ReturnToService=2).
# Clients use it with `export SLURM_CONF=$LOCALSLURM_DIR/etc/slurm.conf`
# (or `source $LOCALSLURM_DIR/env.sh`). Stop it with localslurm/down.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

: "${LOCALSLURM_DIR:=${ROOT}/.state/localslurm}"
: "${LOCALSLURM_CLUSTER_NAME:=localslurm}"
: "${LOCALSLURM_CTLD_PORT:=16817}"
: "${LOCALSLURM_NODE1:=node1}"
: "${LOCALSLURM_NODE2:=node2}"
: "${LOCALSLURM_NODE1_ADDR:=127.0.2.1}"
: "${LOCALSLURM_NODE2_ADDR:=127.0.2.2}"
: "${LOCALSLURM_NODE1_PORT:=16818}"
: "${LOCALSLURM_NODE2_PORT:=16819}"
: "${LOCALSLURM_PARTITION:=local}"
# Both emulated nodes share this machine's cores and memory; declare the cores once per node.
: "${LOCALSLURM_CPUS:=$(nproc)}"
: "${LOCALSLURM_REAL_MEMORY_MB:=4096}"
: "${LOCALSLURM_DEF_MEM_PER_CPU_MB:=1024}"
# Job credentials' lifetime, which is also the wait before a requeued job starts again.
: "${LOCALSLURM_CRED_EXPIRE_S:=20}"
# Node names must resolve (torchrun dials MASTER_ADDR by name): add them to /etc/hosts when missing.
: "${LOCALSLURM_EDIT_HOSTS:=1}"
: "${LOCALSLURM_READY_TIMEOUT_S:=60}"

STATE=${LOCALSLURM_DIR}
CONF=${STATE}/etc/slurm.conf
MUNGE_SOCKET=${STATE}/munge/munge.socket
NODES=("${LOCALSLURM_NODE1}" "${LOCALSLURM_NODE2}")

log() { printf '[localslurm] %s\n' "$*"; }
die() { printf '[localslurm] ERROR: %s\n' "$*" >&2; exit 1; }

# alive PIDFILE: true when the pid in PIDFILE is a running process
alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

check_tools() {
    local tool
    for tool in munged slurmctld slurmd sinfo scontrol; do
        command -v "$tool" >/dev/null || die "$tool not found: install slurm-wlm and munge (make setup)"
    done
}

ensure_hosts() {
    local name addr
    for i in 1 2; do
        name=LOCALSLURM_NODE${i}; name=${!name}
        addr=LOCALSLURM_NODE${i}_ADDR; addr=${!addr}
        if getent hosts "$name" >/dev/null; then
            continue
        fi
        [[ "$LOCALSLURM_EDIT_HOSTS" == 1 ]] \
            || die "$name does not resolve; add '$addr $name' to /etc/hosts or set LOCALSLURM_EDIT_HOSTS=1"
        [[ -w /etc/hosts ]] || die "$name does not resolve and /etc/hosts is not writable: add '$addr $name' (as root)"
        log "adding '$addr $name' to /etc/hosts"
        printf '%s %s  # localslurm\n' "$addr" "$name" >>/etc/hosts
    done
}

render_config() {
    mkdir -p "${STATE}"/{etc,munge,ctld,run,log,fsx} "${STATE}/spool/${NODES[0]}" "${STATE}/spool/${NODES[1]}"
    chmod 0700 "${STATE}/munge"
    local tmp=${CONF}.tmp
    sed -e "s|@STATE_DIR@|${STATE}|g" \
        -e "s|@CLUSTER_NAME@|${LOCALSLURM_CLUSTER_NAME}|g" \
        -e "s|@CTLD_HOST@|$(hostname -s)|g" \
        -e "s|@CTLD_ADDR@|127.0.0.1|g" \
        -e "s|@CTLD_PORT@|${LOCALSLURM_CTLD_PORT}|g" \
        -e "s|@NODE1@|${NODES[0]}|g" -e "s|@NODE2@|${NODES[1]}|g" \
        -e "s|@NODE1_ADDR@|${LOCALSLURM_NODE1_ADDR}|g" -e "s|@NODE2_ADDR@|${LOCALSLURM_NODE2_ADDR}|g" \
        -e "s|@NODE1_PORT@|${LOCALSLURM_NODE1_PORT}|g" -e "s|@NODE2_PORT@|${LOCALSLURM_NODE2_PORT}|g" \
        -e "s|@CPUS@|${LOCALSLURM_CPUS}|g" \
        -e "s|@REAL_MEMORY@|${LOCALSLURM_REAL_MEMORY_MB}|g" \
        -e "s|@DEF_MEM_PER_CPU@|${LOCALSLURM_DEF_MEM_PER_CPU_MB}|g" \
        -e "s|@PARTITION@|${LOCALSLURM_PARTITION}|g" \
        -e "s|@CRED_EXPIRE@|${LOCALSLURM_CRED_EXPIRE_S}|g" \
        "${ROOT}/localslurm/slurm.conf.in" >"$tmp"
    if grep -q '@[A-Z0-9_]*@' "$tmp"; then
        die "unfilled placeholder in $tmp: $(grep -o '@[A-Z0-9_]*@' "$tmp" | sort -u | tr '\n' ' ')"
    fi
    mv "$tmp" "$CONF"
    : >"${STATE}/etc/plugstack.conf"
    cat >"${STATE}/env.sh" <<EOF
# source me: points the Slurm client commands at the local cluster
export SLURM_CONF=${CONF}
export LOCALSLURM_DIR=${STATE}
EOF
}

start_munged() {
    local pidfile=${STATE}/munge/munged.pid
    if alive "$pidfile"; then
        log "munged running (pid $(cat "$pidfile"))"
        return
    fi
    if [[ ! -s "${STATE}/munge/munge.key" ]]; then
        dd if=/dev/urandom of="${STATE}/munge/munge.key" bs=1024 count=1 status=none
        chmod 0400 "${STATE}/munge/munge.key"
    fi
    rm -f "$MUNGE_SOCKET" "${MUNGE_SOCKET}.lock"
    # --force: munged refuses to run as root without it; the key and socket are private to STATE.
    munged --force \
        --socket="$MUNGE_SOCKET" \
        --key-file="${STATE}/munge/munge.key" \
        --pid-file="$pidfile" \
        --log-file="${STATE}/log/munged.log" \
        --seed-file="${STATE}/munge/munged.seed"
    wait_for "munged socket" test -S "$MUNGE_SOCKET"
    log "munged started (pid $(cat "$pidfile"))"
}

start_slurmctld() {
    local pidfile=${STATE}/run/slurmctld.pid
    if alive "$pidfile"; then
        log "slurmctld running (pid $(cat "$pidfile"))"
        return
    fi
    # -i: ignore state from an earlier run whose nodes were not stopped cleanly.
    slurmctld -f "$CONF" -i
    wait_for "slurmctld" env SLURM_CONF="$CONF" scontrol ping
    log "slurmctld started (pid $(cat "$pidfile")), port ${LOCALSLURM_CTLD_PORT}"
}

start_slurmd() {
    local node=$1
    local pidfile=${STATE}/run/slurmd-${node}.pid
    if alive "$pidfile"; then
        log "slurmd ${node} running (pid $(cat "$pidfile"))"
        return
    fi
    slurmd -f "$CONF" -N "$node"
    wait_for "slurmd ${node}" alive "$pidfile"
    log "slurmd ${node} started (pid $(cat "$pidfile"))"
}

wait_for() {
    local what=$1
    shift
    local deadline=$((SECONDS + LOCALSLURM_READY_TIMEOUT_S))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "$what not ready after ${LOCALSLURM_READY_TIMEOUT_S}s (logs: ${STATE}/log)"
        sleep 0.5
    done
}

nodes_idle() {
    local states
    states=$(SLURM_CONF="$CONF" sinfo -h -N -o '%N %t' -p "$LOCALSLURM_PARTITION")
    for node in "${NODES[@]}"; do
        grep -Eq "^${node} (idle|mix|alloc)" <<<"$states" || return 1
    done
}

main() {
    check_tools
    ensure_hosts
    render_config
    start_munged
    start_slurmctld
    start_slurmd "${NODES[0]}"
    start_slurmd "${NODES[1]}"
    wait_for "nodes ${NODES[*]} idle" nodes_idle
    log "cluster up: SLURM_CONF=${CONF}"
    SLURM_CONF="$CONF" sinfo -N -p "$LOCALSLURM_PARTITION"
}

main "$@"
