"""Session fixture: the real local Slurm cluster (localslurm/up.sh), started once and stopped at the end.

The tests' cluster has its own state directory and ports (jobs_helpers.TEST_CLUSTER_DIR,
TEST_PORT_BASE), so it runs beside the `make demo` cluster. A cluster left running by an
interrupted session is reused (or restarted, when this checkout renders another config).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest
from jobs_helpers import LOCALSLURM, ROOT, TEST_CLUSTER_DIR, LocalCluster, cluster_env


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[LocalCluster]:
    for tool in ("slurmctld", "slurmd", "munged"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: run `make setup` (apt: slurm-wlm munge)")
    env = cluster_env()
    shutil.rmtree(TEST_CLUSTER_DIR / "fsx", ignore_errors=True)  # runs of an earlier session
    up = subprocess.run(["bash", str(LOCALSLURM / "up.sh")], env=env, cwd=ROOT, text=True,
                        capture_output=True, timeout=180, check=False)
    if up.returncode == 2 and "running with other settings" in up.stderr:
        # an earlier session's cluster, from an older checkout: up.sh will not rewrite it under its daemons
        subprocess.run(["bash", str(LOCALSLURM / "down.sh")], env=env, cwd=ROOT, timeout=120, check=False)
        up = subprocess.run(["bash", str(LOCALSLURM / "up.sh")], env=env, cwd=ROOT, text=True,
                            capture_output=True, timeout=180, check=False)
    if up.returncode != 0:
        pytest.fail(f"localslurm/up.sh failed ({up.returncode}):\n{up.stdout}\n{up.stderr}")
    try:
        yield LocalCluster(state_dir=TEST_CLUSTER_DIR, env=env)
    finally:
        subprocess.run(["bash", str(LOCALSLURM / "down.sh")], env=env, cwd=ROOT, timeout=120, check=False)
