"""Every job template and shell script of jobs/, localslurm/ and the demo is shellcheck-clean."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from jobs_helpers import JOBS, LOCALSLURM, ROOT

SCRIPTS = sorted(
    [*JOBS.glob("*.sbatch"), JOBS / "submit", *(JOBS / "lib").glob("*.sh"), *LOCALSLURM.glob("*.sh"),
     ROOT / "scripts" / "demo.sh"]
)


def test_there_is_a_template_for_every_step() -> None:
    steps = {p.stem for p in JOBS.glob("*.sbatch")}
    assert steps == {"env", "download", "compile", "train", "consolidate", "merge", "evaluate", "generate", "report"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_script_is_shellcheck_clean(script) -> None:
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed: run `make setup` (apt: shellcheck)")
    result = subprocess.run(["shellcheck", "-x", str(script.relative_to(ROOT))], cwd=ROOT, text=True,
                            capture_output=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
