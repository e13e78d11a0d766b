#!/usr/bin/env bash
# Runs a command as the local cluster's job user (localslurm/user.sh), the way a HyperPod
# user submits: `localslurm/as-user.sh jobs/submit --wait`. The environment is kept (sbatch
# passes it on to the jobs); HOME, USER and LOGNAME become the user's. Not root: runs as is.
set -euo pipefail

# shellcheck source=localslurm/user.sh
source "$(dirname "${BASH_SOURCE[0]}")/user.sh"

if ((EUID != 0)); then
    exec "$@"
fi
if ! entry=$(getent passwd "$LOCALSLURM_USER"); then
    printf 'error: user %s does not exist: start the local cluster first (localslurm/up.sh creates it)\n' \
        "$LOCALSLURM_USER" >&2
    exit 2
fi
home=$(cut -d: -f6 <<<"$entry")
exec setpriv --reuid="$LOCALSLURM_USER" --regid="$LOCALSLURM_USER" --init-groups \
    env HOME="$home" USER="$LOCALSLURM_USER" LOGNAME="$LOCALSLURM_USER" "$@"
