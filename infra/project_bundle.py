"""Stages the parts of this repository the cluster needs (the training package and the
job templates) as `project/` next to the lifecycle scripts. The trn1 workers copy it to
FSx and install it into the Neuron venv, so jobs on the cluster run the same code that
was tested here.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

PROJECT_DIR_NAME = "project"
PROJECT_PATHS: tuple[str, ...] = ("pyproject.toml", "README.md", "training", "jobs")
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


def stage_project(root: Path, paths: Sequence[str] = PROJECT_PATHS) -> Path:
    """A temporary directory holding `project/<path>` for each path; CDK copies it into
    the cloud assembly during synth, so it is removed when the process exits."""
    missing = [p for p in paths if not (root / p).exists()]
    if missing:
        raise FileNotFoundError(f"cannot ship the project to the cluster: {', '.join(missing)} missing under {root}")
    staging = Path(tempfile.mkdtemp(prefix="hyperpod-project-"))
    atexit.register(shutil.rmtree, staging, ignore_errors=True)
    target = staging / PROJECT_DIR_NAME
    target.mkdir()
    for name in paths:
        source = root / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=_SKIP)
        else:
            shutil.copy2(source, target / name)
    return staging
