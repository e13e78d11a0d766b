#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine: apt packages,
# the Python venv and the pinned CDK CLI. Idempotent and quick when nothing changed,
# so `make test` and `make demo` can always call it first.
set -euo pipefail

: "${VENV:=.venv}"
# The local cluster's jobs run as an unprivileged user with this venv, so its interpreter must be
# one every user can run: the system's python3 first (a pyenv build under /root is not).
: "${PYTHON:=$(command -v /usr/bin/python3 || command -v python3)}"
: "${NEURON_CHECK_VENV:=.venv-neuron}"
# chromium: the report page is checked in a real headless browser (tests/report)
: "${APT_PACKAGES:=slurm-wlm munge shellcheck slurmdbd mariadb-server python3-venv iproute2 chromium}"

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[setup] %s\n' "$*"; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

install_apt_packages() {
    local missing=()
    local pkg
    for pkg in ${APT_PACKAGES}; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        log "apt packages present: ${APT_PACKAGES}"
        return
    fi
    log "installing apt packages: ${missing[*]}"
    # Another setup (a second checkout, CI) may hold the dpkg lock: wait for it instead of failing.
    as_root apt-get -o DPkg::Lock::Timeout=600 update -qq
    # Debian's slurm packages try to start services; there is no init system here.
    as_root env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
        apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# others_can_run FILE: FILE (symlinks resolved) and every directory above it let any user in
others_can_run() {
    local p
    p=$(readlink -f "$1")
    while [[ -n "$p" && "$p" != / ]]; do
        (($(stat -c %a "$p" | awk '{ print substr($0, length($0)) }') & 1)) || return 1
        p=$(dirname "$p")
    done
}

install_python_env() {
    local stamp="${VENV}/.installed-pyproject-sha"
    local want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [[ -x "${VENV}/bin/python" ]] && ! others_can_run "${VENV}/bin/python"; then
        log "recreating ${VENV}: its interpreter $(readlink -f "${VENV}/bin/python") is out of other users' reach"
        rm -rf "$VENV"
    fi
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        log "venv up to date: ${VENV}"
        return
    fi
    [[ -x "${VENV}/bin/python" ]] || "$PYTHON" -m venv "$VENV"
    log "installing Python packages into ${VENV} (torch 2.13.0 CPU comes from local disk)"
    "${VENV}/bin/pip" install -q --disable-pip-version-check -e ".[dev]"
    echo "$want" >"$stamp"
}

# The check-neuron venv: optimum-neuron 0.4.5 and the versions the cluster venv resolves to, with
# torch_xla and neuronx_distributed simulated (tests/neuron). optimum-neuron needs Python >=3.10,<3.12.
neuron_check_python() {
    local py
    for py in python3.11 python3.10; do
        if command -v "$py" >/dev/null && "$py" -c 'import sys; assert (3, 10) <= sys.version_info[:2] < (3, 12)' 2>/dev/null; then
            command -v "$py"
            return
        fi
    done
    log "error: the check-neuron venv needs Python 3.10 or 3.11 (optimum-neuron 0.4.5); python3 here is $(python3 -V 2>&1)"
    return 1
}

install_neuron_check_env() {
    local py stamp="${NEURON_CHECK_VENV}/.installed-sha" want constraints
    py=$(neuron_check_python)
    constraints=$("${VENV}/bin/python" tests/neuron/pins.py)
    want=$( { "$py" -VV; echo "$constraints"; cat pyproject.toml; } | sha256sum | cut -d' ' -f1)
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "${NEURON_CHECK_VENV}/bin/python" ]]; then
        log "check-neuron venv up to date: ${NEURON_CHECK_VENV}"
        return
    fi
    log "installing the check-neuron venv ${NEURON_CHECK_VENV} (optimum-neuron 0.4.5, torch 2.13.0 CPU from local disk)"
    "$py" -m venv --clear "$NEURON_CHECK_VENV"
    echo "$constraints" >"${NEURON_CHECK_VENV}/constraints.txt"
    "${NEURON_CHECK_VENV}/bin/pip" install -q --disable-pip-version-check -c "${NEURON_CHECK_VENV}/constraints.txt" \
        "optimum-neuron[training]==0.4.5" torch -e ".[training]" pytest pytest-timeout
    echo "$want" >"$stamp"
}

install_cdk_cli() {
    local stamp="node_modules/.installed-lock-sha"
    local want
    want=$(sha256sum package-lock.json | cut -d' ' -f1)
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        log "CDK CLI up to date: $(node_modules/.bin/cdk --version 2>/dev/null)"
        return
    fi
    log "installing the pinned CDK CLI (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$want" >"$stamp"
}

install_apt_packages
install_python_env
install_neuron_check_env
install_cdk_cli
log "done"
