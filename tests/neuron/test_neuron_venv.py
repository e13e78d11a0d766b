"""The check-neuron venv holds what the cluster venv resolves to under its pins, and that set imports."""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys

from packaging.requirements import Requirement
from pins import constraints


def test_every_pin_of_the_cluster_is_what_is_installed() -> None:
    for pin in constraints():
        req = Requirement(pin)
        installed = md.version(req.name)
        assert req.specifier.contains(installed, prereleases=True) or (
            req.name == "torch" and installed.startswith(str(req.specifier).lstrip("=") + "+")), (pin, installed)
    assert md.version("optimum-neuron") == "0.4.5"


def test_the_pinned_set_imports_datasets_with_numpy_1() -> None:
    # pyarrow >= 26 refuses NumPy 1.x here ("pyarrow requires NumPy 2.0 or newer"), so without the
    # pyarrow pin `import datasets` fails in the cluster venv
    code = ("import numpy, pyarrow, datasets, pandas, transformers, peft, trl, accelerate, matplotlib.pyplot;"
            "print(numpy.__version__, pyarrow.__version__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    numpy_version, pyarrow_version = result.stdout.split()
    assert numpy_version.startswith("1.") and int(pyarrow_version.split(".")[0]) < 26
