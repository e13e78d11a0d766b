#!/usr/bin/env bash
# HyperPod runs this on every node when it is created (OnCreate). It logs everything to
# the provisioning log, works out the node's role from the resource config and hands over
# to the provision package. A failed step makes it exit non-zero, naming the step, so
# HyperPod marks the node failed instead of putting it into service half set up.
#
# Re-running it is safe: every step checks before it changes anything.
#   sudo bash /opt/hyperpod-lifecycle/on_create.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

: "${PROVISION_ROOT:=/}"             # the node's root; a temporary directory in tests
: "${LOG_FILE:=${PROVISION_ROOT%/}/var/log/provision/provisioning.log}"
: "${SAGEMAKER_RESOURCE_CONFIG_PATH:=/opt/ml/config/resource_config.json}"
: "${PROVISIONING_PARAMETERS_PATH:=${HERE}/provisioning_parameters.json}"
: "${PYTHON:=python3}"               # the AMI's system python3; the package is stdlib only
: "${NODE_IP:=}"                     # default: the primary interface's address
: "${PROVISION_RECORD:=}"            # dry run: record commands into this file instead of running them
: "${PROVISION_SCRIPT:=}"            # dry run: JSON rules that answer the recorded commands
: "${RETRY_DELAY:=10}"               # seconds between retries (FSx mount, daemon start)
: "${SLURM_CONF_TIMEOUT:=600}"       # seconds the controller waits for HyperPod's slurm.conf

mkdir -p "$(dirname "$LOG_FILE")"
exec > >(tee -a "$LOG_FILE") 2>&1

log() { printf '[on_create %s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }
fail() {
    log "FAILED: $*"
    exit 1
}

[[ -f $SAGEMAKER_RESOURCE_CONFIG_PATH ]] || fail "resource config not found: $SAGEMAKER_RESOURCE_CONFIG_PATH"
[[ -f $PROVISIONING_PARAMETERS_PATH ]] || fail "provisioning parameters not found: $PROVISIONING_PARAMETERS_PATH"

args=(
    run
    --params "$PROVISIONING_PARAMETERS_PATH"
    --resource-config "$SAGEMAKER_RESOURCE_CONFIG_PATH"
    --root "$PROVISION_ROOT"
    --bundle-dir "$HERE"
    --retry-delay "$RETRY_DELAY"
    --slurm-conf-timeout "$SLURM_CONF_TIMEOUT"
)
if [[ -n $NODE_IP ]]; then args+=(--ip "$NODE_IP"); fi
if [[ -n $PROVISION_RECORD ]]; then args+=(--record "$PROVISION_RECORD"); fi
if [[ -n $PROVISION_SCRIPT ]]; then args+=(--script "$PROVISION_SCRIPT"); fi

log "start: resource config $SAGEMAKER_RESOURCE_CONFIG_PATH, parameters $PROVISIONING_PARAMETERS_PATH, log $LOG_FILE"
rc=0
PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -u -m provision "${args[@]}" || rc=$?
if ((rc != 0)); then
    log "FAILED: provisioning exited $rc (the failed step is named above); log: $LOG_FILE"
    exit "$rc"
fi
log "done"
