#!/usr/bin/env bash
# A dry run of on_create.sh, anywhere (no root, no AWS): for each role, a fake node root laid
# out like a node fresh from the HyperPod image, the example inputs of lifecycle/examples/
# (provisioning parameters, resource config, canned answers to the commands), and on_create.sh
# in its record mode: files land under the fake root, commands are recorded, none is run
# (but ssh-keygen, under the fake root).
#
#   bash lifecycle/dry_run.sh                  # controller, login and worker
#   bash lifecycle/dry_run.sh worker           # one role
#   DRY_RUN_DIR=/tmp/dry bash lifecycle/dry_run.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

: "${DRY_RUN_DIR:=$(mktemp -d -t lifecycle-dry-run.XXXXXX)}"
: "${DRY_RUN_EXAMPLES:=${HERE}/examples}"
: "${PYTHON:=python3}"

params=${DRY_RUN_EXAMPLES}/provisioning_parameters.json
resources=${DRY_RUN_EXAMPLES}/resource_config.json

# node_ip ROLE: the first instance of that role's group in the example resource config
node_ip() {
    "$PYTHON" - "$1" "$params" "$resources" <<'PY'
import json, sys
role, params, resources = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
group = {"controller": params["controller_group"], "login": params.get("login_group"),
         "worker": params["worker_groups"][0]["instance_group_name"]}.get(role)
ips = [i["CustomerIpAddress"] for g in resources["InstanceGroups"] if g["Name"] == group for i in g["Instances"]]
if not ips:
    sys.exit(f"error: no {role} instance in {sys.argv[3]} (roles: controller, login, worker)")
print(ips[0])
PY
}

# fresh_node ROOT: what the image leaves on a node before the lifecycle scripts run; the one
# description of it (each fact with its source) is lifecycle/provision/fresh_node.py, which the
# lifecycle tests build their nodes with too
fresh_node() {
    PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m provision.fresh_node "$1" --examples "$DRY_RUN_EXAMPLES"
}

roles=("$@")
((${#roles[@]})) || roles=(controller login worker)
for role in "${roles[@]}"; do
    case "$role" in
        controller | login | worker) ;;
        *) printf 'error: unknown role %s (roles: controller, login, worker)\n' "$role" >&2; exit 2 ;;
    esac
    dir=${DRY_RUN_DIR}/${role}
    rm -rf "$dir"
    fresh_node "${dir}/root"
    ip=$(node_ip "$role")
    printf '== %s (%s): fake root %s\n' "$role" "$ip" "${dir}/root"
    PROVISION_ROOT="${dir}/root" \
        SAGEMAKER_RESOURCE_CONFIG_PATH="$resources" \
        PROVISIONING_PARAMETERS_PATH="$params" \
        PROVISION_RECORD="${dir}/commands.jsonl" \
        PROVISION_SCRIPT="${DRY_RUN_EXAMPLES}/fresh_node_answers.json" \
        NODE_IP="$ip" RETRY_DELAY=0 SLURM_CONF_TIMEOUT=5 PYTHON="$PYTHON" \
        bash "${HERE}/on_create.sh" >"${dir}/on_create.log" 2>&1 \
        || { tail -n 20 "${dir}/on_create.log" >&2; printf 'error: the %s dry run failed (log: %s)\n' "$role" "${dir}/on_create.log" >&2; exit 1; }
    printf '   %s commands recorded in %s; log %s\n' "$(wc -l <"${dir}/commands.jsonl")" "${dir}/commands.jsonl" \
        "${dir}/on_create.log"
    grep -E '^(==>|<==) ' "${dir}/on_create.log" | sed 's/^/   /' | grep '<==' || true
done
