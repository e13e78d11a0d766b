#!/usr/bin/env bash
# Starts a real two-node Slurm cluster on this one machine, without systemd:
# its own munged (socket, key and state under LOCALSLURM_DIR), one slurmctld and
# slurmd daemons (`slurmd -N <node>`) that emulate two workers and a login node. Every
# pid, log, spool and the rendered slurm.conf live under LOCALSLURM_DIR; ports are
# fixed but configurable, so it can run next to other Slurm daemons on the machine.
#
# Strict where HyperPod is: jobs run as an unprivileged user (localslurm/user.sh; created
# when missing); the shared root LOCALSLURM_DIR/fsx belongs to root (0755) and is prepared
# by the lifecycle's own code (provision shared-tree), as the controller prepares /fsx;
# the login node sits in the default partition (dev, Nodes=ALL), the workers also in a
# partition of their own (LOCALSLURM_PARTITION).
#
# Idempotent: a running cluster is reused, missing daemons are started (a node
# whose slurmd comes back returns to service by itself: ReturnToService=2).
# Clients use it with `export SLURM_CONF=$LOCALSLURM_DIR/etc/slurm.conf`
# (or `source $LOCALSLURM_DIR/env.sh`). Stop it with localslurm/down.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# shellcheck source=localslurm/user.sh
source "${ROOT}/localslurm/user.sh"
: "${LOCALSLURM_DIR:=${ROOT}/.state/localslurm}"
: "${LOCALSLURM_CLUSTER_NAME:=localslurm}"
: "${LOCALSLURM_CTLD_PORT:=16817}"
: "${LOCALSLURM_NODE1:=node1}"
: "${LOCALSLURM_NODE2:=node2}"
: "${LOCALSLURM_NODE1_ADDR:=127.0.2.1}"
: "${LOCALSLURM_NODE2_ADDR:=127.0.2.2}"
: "${LOCALSLURM_NODE1_PORT:=16818}"
: "${LOCALSLURM_NODE2_PORT:=16819}"
: "${LOCALSLURM_LOGIN:=login1}"
: "${LOCALSLURM_LOGIN_ADDR:=127.0.2.3}"
: "${LOCALSLURM_LOGIN_PORT:=$((LOCALSLURM_CTLD_PORT + 3))}"
# the workers' partition; the default partition is HyperPod's: dev, every node, login included
: "${LOCALSLURM_PARTITION:=local}"
: "${LOCALSLURM_DEFAULT_PARTITION:=dev}"
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
NODES=("${LOCALSLURM_NODE1}" "${LOCALSLURM_NODE2}" "${LOCALSLURM_LOGIN}")

log() { printf '[localslurm] %s\n' "$*"; }
# Daemons this run started: stopped again if the run fails, so a failed start leaves nothing behind.
STARTED=()
undo_started() {
    local pidfile
    for pidfile in "${STARTED[@]}"; do
        if alive "$pidfile"; then
            kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
        fi
    done
}
die() {
    printf '[localslurm] ERROR: %s\n' "$*" >&2
    undo_started
    exit 1
}
# refuse WHAT: a clash with what already runs here: one error line, exit 2, nothing started or changed
refuse() {
    printf 'error: %s\n' "$*" >&2
    exit 2
}

# alive PIDFILE: true when the pid in PIDFILE is a running process
alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# any_alive: one of this cluster's daemons runs
any_alive() {
    local pidfile
    for pidfile in "${STATE}/munge/munged.pid" "${STATE}/run/slurmctld.pid" "${STATE}"/run/slurmd-*.pid; do
        if alive "$pidfile"; then return 0; fi
    done
    return 1
}

# check_ports: every port a daemon of ours is about to listen on is free. A port in use is
# another cluster's (or program's): starting against it would send this cluster's messages,
# signed with another munge key, into the other cluster's daemons, and fail after a long wait.
check_ports() {
    local -a want=()
    alive "${STATE}/run/slurmctld.pid" || want+=("${LOCALSLURM_CTLD_PORT}:slurmctld:LOCALSLURM_CTLD_PORT")
    alive "${STATE}/run/slurmd-${NODES[0]}.pid" || want+=("${LOCALSLURM_NODE1_PORT}:slurmd ${NODES[0]}:LOCALSLURM_NODE1_PORT")
    alive "${STATE}/run/slurmd-${NODES[1]}.pid" || want+=("${LOCALSLURM_NODE2_PORT}:slurmd ${NODES[1]}:LOCALSLURM_NODE2_PORT")
    alive "${STATE}/run/slurmd-${NODES[2]}.pid" || want+=("${LOCALSLURM_LOGIN_PORT}:slurmd ${NODES[2]}:LOCALSLURM_LOGIN_PORT")
    local entry port who var
    for entry in "${want[@]}"; do
        IFS=: read -r port who var <<<"$entry"
        if [[ -n "$(ss -Hltn "sport = :${port}")" ]]; then
            refuse "port ${port} (${who}) is already in use, by another cluster or program: set ${var}" \
                "(and the other LOCALSLURM_*_PORT) to free ports, or stop what listens there"
        fi
    done
}

check_tools() {
    local tool
    for tool in munged slurmctld slurmd sinfo scontrol setpriv ss; do
        command -v "$tool" >/dev/null || die "$tool not found: install slurm-wlm and munge (make setup)"
    done
}

ensure_hosts() {
    local name addr
    for var in LOCALSLURM_NODE1 LOCALSLURM_NODE2 LOCALSLURM_LOGIN; do
        name=${!var}
        addr=${var}_ADDR; addr=${!addr}
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
    mkdir -p "${STATE}"/{etc,munge,ctld,run,log} "${STATE}/spool/${NODES[0]}" "${STATE}/spool/${NODES[1]}" \
        "${STATE}/spool/${NODES[2]}"
    # Every user's Slurm commands authenticate through the socket, as with /run/munge on a node;
    # the key itself stays private to root (0400).
    chmod 0755 "${STATE}/munge"
    local tmp=${CONF}.tmp
    sed -e "s|@STATE_DIR@|${STATE}|g" \
        -e "s|@CLUSTER_NAME@|${LOCALSLURM_CLUSTER_NAME}|g" \
        -e "s|@CTLD_HOST@|$(hostname -s)|g" \
        -e "s|@CTLD_ADDR@|127.0.0.1|g" \
        -e "s|@CTLD_PORT@|${LOCALSLURM_CTLD_PORT}|g" \
        -e "s|@NODE1@|${NODES[0]}|g" -e "s|@NODE2@|${NODES[1]}|g" \
        -e "s|@NODE1_ADDR@|${LOCALSLURM_NODE1_ADDR}|g" -e "s|@NODE2_ADDR@|${LOCALSLURM_NODE2_ADDR}|g" \
        -e "s|@NODE1_PORT@|${LOCALSLURM_NODE1_PORT}|g" -e "s|@NODE2_PORT@|${LOCALSLURM_NODE2_PORT}|g" \
        -e "s|@LOGIN@|${NODES[2]}|g" -e "s|@LOGIN_ADDR@|${LOCALSLURM_LOGIN_ADDR}|g" \
        -e "s|@LOGIN_PORT@|${LOCALSLURM_LOGIN_PORT}|g" -e "s|@DEFAULT_PARTITION@|${LOCALSLURM_DEFAULT_PARTITION}|g" \
        -e "s|@CPUS@|${LOCALSLURM_CPUS}|g" \
        -e "s|@REAL_MEMORY@|${LOCALSLURM_REAL_MEMORY_MB}|g" \
        -e "s|@DEF_MEM_PER_CPU@|${LOCALSLURM_DEF_MEM_PER_CPU_MB}|g" \
        -e "s|@PARTITION@|${LOCALSLURM_PARTITION}|g" \
        -e "s|@CRED_EXPIRE@|${LOCALSLURM_CRED_EXPIRE_S}|g" \
        "${ROOT}/localslurm/slurm.conf.in" >"$tmp"
    if grep -q '@[A-Z0-9_]*@' "$tmp"; then
        die "unfilled placeholder in $tmp: $(grep -o '@[A-Z0-9_]*@' "$tmp" | sort -u | tr '\n' ' ')"
    fi
    if [[ -f "$CONF" ]] && ! cmp -s "$tmp" "$CONF" && any_alive; then
        rm -f "$tmp"
        refuse "the cluster in ${STATE} is running with other settings (ports, nodes); stop it first" \
            "(localslurm/down.sh with LOCALSLURM_DIR=${STATE}) or use another LOCALSLURM_DIR"
    fi
    mv "$tmp" "$CONF"
    : >"${STATE}/etc/plugstack.conf"
    cat >"${STATE}/env.sh" <<EOF
# source me: points the Slurm client commands at the local cluster
export SLURM_CONF=${CONF}
export LOCALSLURM_DIR=${STATE}
export LOCALSLURM_USER=${LOCALSLURM_USER}
EOF
}

# The job user, as on HyperPod: an unprivileged account with a home of its own.
ensure_user() {
    if id -u "$LOCALSLURM_USER" >/dev/null 2>&1; then
        return
    fi
    ((EUID == 0)) || die "user $LOCALSLURM_USER does not exist (set LOCALSLURM_USER to yours, or run as root)"
    log "creating user ${LOCALSLURM_USER}: the jobs run as this unprivileged user, as on HyperPod"
    # another cluster's up.sh may create it at the same moment
    useradd --create-home --user-group --shell /bin/bash "$LOCALSLURM_USER" 2>/dev/null \
        || id -u "$LOCALSLURM_USER" >/dev/null 2>&1 || die "useradd $LOCALSLURM_USER failed"
}

# The shared root: root-owned 0755 like FSx on HyperPod, its jobs' tree prepared by the lifecycle's code.
prepare_fsx() {
    local fsx=${STATE}/fsx
    mkdir -p "$fsx"
    chmod 0755 "$fsx"
    if ((EUID == 0)); then
        chown root:root "$fsx"
    fi
    PYTHONPATH="${ROOT}/lifecycle" python3 -m provision shared-tree --mount-point "$fsx" --user "$LOCALSLURM_USER" \
        >>"${STATE}/log/shared-tree.log" || die "preparing ${fsx} failed (log: ${STATE}/log/shared-tree.log)"
    "${ROOT}/localslurm/as-user.sh" test -w "${fsx}/s3/runs" \
        || die "${LOCALSLURM_USER} cannot write ${fsx}/s3/runs: every directory above ${STATE} must let other users in"
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
    STARTED+=("$pidfile")
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
    STARTED+=("$pidfile")
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
    STARTED+=("$pidfile")
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
    states=$(SLURM_CONF="$CONF" sinfo -h -N -o '%N %t')
    for node in "${NODES[@]}"; do
        grep -Eq "^${node} (idle|mix|alloc)" <<<"$states" || return 1
    done
}

main() {
    check_tools
    check_ports
    ensure_hosts
    render_config
    ensure_user
    prepare_fsx
    start_munged
    start_slurmctld
    for node in "${NODES[@]}"; do
        start_slurmd "$node"
    done
    wait_for "nodes ${NODES[*]} idle" nodes_idle
    log "cluster up: SLURM_CONF=${CONF}; jobs run as ${LOCALSLURM_USER} (localslurm/as-user.sh)"
    SLURM_CONF="$CONF" sinfo -N
}

main "$@"
