# shellcheck shell=bash
# Sourced by up.sh and as-user.sh: the unprivileged user the local cluster's jobs run as.
# HyperPod's users submit as the cluster's default user (ubuntu), never as root; run as
# root here, the local cluster does the same. Run as another user, jobs run as that user.
if ((EUID == 0)); then
    : "${LOCALSLURM_USER:=ubuntu}"
else
    : "${LOCALSLURM_USER:=$(id -un)}"
fi
export LOCALSLURM_USER
