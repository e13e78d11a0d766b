"""apt installs that wait for the dpkg lock instead of failing on it.

HyperPod's own agents may be running apt when the lifecycle scripts start.
"""

from __future__ import annotations

from typing import Sequence

from provision.runner import Runner

DPKG_LOCK_TIMEOUT_S = 600


def missing_packages(runner: Runner, packages: Sequence[str]) -> list[str]:
    missing = []
    for pkg in packages:
        res = runner.run(["dpkg-query", "-W", "-f=${Status}", pkg], check=False, quiet=True)
        if "install ok installed" not in res.stdout:
            missing.append(pkg)
    return missing


def ensure_packages(runner: Runner, packages: Sequence[str]) -> bool:
    """Install what is missing; True when something was installed."""
    missing = missing_packages(runner, packages)
    if not missing:
        return False
    lock = f"DPkg::Lock::Timeout={DPKG_LOCK_TIMEOUT_S}"
    env = ["env", "DEBIAN_FRONTEND=noninteractive"]
    runner.run([*env, "apt-get", "-o", lock, "update", "-q"])
    runner.run([*env, "apt-get", "-o", lock, "install", "-y", "-q", "--no-install-recommends", *missing])
    return True
