#!/usr/bin/env bash
# Post-create check: runs the node check on every Slurm node with srun and reports, per node,
# FSx mounted, home on FSx, slurmd up and the Neuron devices seen. Run it on the controller
# (or a login node) once the cluster is InService; exits non-zero if any node fails.
#   bash /opt/hyperpod-lifecycle/cluster_check.sh
set -euo pipefail

: "${LIFECYCLE_DIR:=/opt/hyperpod-lifecycle}"
: "${SAGEMAKER_RESOURCE_CONFIG_PATH:=/opt/ml/config/resource_config.json}"
: "${PROVISIONING_PARAMETERS_PATH:=${LIFECYCLE_DIR}/provisioning_parameters.json}"
: "${PYTHON:=python3}"
: "${SRUN_TIMEOUT_MIN:=5}"

failed=0
checked=0
# One srun per partition, one task per node; every partition's nodes are all checked.
while read -r partition count; do
    [[ -n $partition ]] || continue
    partition=${partition%\*}
    printf '== partition %s: %s node(s)\n' "$partition" "$count"
    rc=0
    srun --partition="$partition" --nodes="$count" --ntasks-per-node=1 --time="$SRUN_TIMEOUT_MIN" \
        --job-name=post-create-check \
        env PYTHONPATH="$LIFECYCLE_DIR" "$PYTHON" -m provision check-node \
        --params "$PROVISIONING_PARAMETERS_PATH" \
        --resource-config "$SAGEMAKER_RESOURCE_CONFIG_PATH" || rc=$?
    checked=$((checked + count))
    if ((rc != 0)); then failed=1; fi
done < <(sinfo --noheader --format='%R %D')

if ((checked == 0)); then
    echo "post-create check: sinfo lists no nodes" >&2
    exit 1
fi
if ((failed)); then
    echo "post-create check: FAILED on at least one of ${checked} node(s) (see the lines with \"ok\": false)" >&2
    exit 1
fi
echo "post-create check: all ${checked} node(s) OK"
