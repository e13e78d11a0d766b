"""The directories on FSx that the default user's jobs write into, prepared once by root.

FSx for Lustre is mounted root-owned (0755) on HyperPod, so `ubuntu` can create
nothing at its top. The controller's lifecycle run (root, once for the cluster)
creates the tree the jobs' defaults use (jobs/lib/common.sh) and hands it to the
default user. The directories are setgid, so everything made below them keeps the
user's group, and group-readable: outputs under EXPORTED_DIR/runs are exported to
S3 by the data repository association and read by the group's other users.

localslurm/up.sh prepares its shared root with this same code
(`python3 -m provision shared-tree`), so the local cluster's jobs meet the same tree.
"""

from __future__ import annotations

from provision.host import Host

# The FSx path the data repository association links to the bucket: infra/storage.py's
# FSX_LINKED_PATH without its slash (tests/lifecycle check that they agree).
EXPORTED_DIR = "s3"
# Below the mount point: base models; data sets (hpctl upload lands here through S3);
# every run's outputs (adapter, merged model, metrics, logs, and its report, which `hpctl report`
# reads from the bucket), exported to S3; venvs. RUNS_DIR is training/report.py's RUNS_DIR (the
# lifecycle runs without the project's packages; tests/lifecycle check that they agree).
RUNS_DIR = "runs"
USER_DIRS = ("models", f"{EXPORTED_DIR}/datasets", f"{EXPORTED_DIR}/{RUNS_DIR}", "envs")
# setgid + rwxr-xr-x: the user writes, the group reads, new files keep the group.
MODE = 0o2755


def prepare_shared_tree(host: Host, mount_point: str, user: str) -> list[str]:
    """Create (or fix the mode and owner of) each of USER_DIRS; the paths changed."""
    changed = []
    for rel in USER_DIRS:
        path = f"{mount_point.rstrip('/')}/{rel}"
        if host.mkdir(path, MODE, owner=user):
            changed.append(path)
    for path in changed:
        print(f"{path}: owned by {user}, mode {MODE:o}", flush=True)
    return changed
