"""The Neuron stack's pins have one home (provision.config.NEURON_PINS); pyproject cannot read it, so
its copies of the shared pins are checked here."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
from provision.config import NEURON_PINS

ROOT = Path(__file__).resolve().parents[2]


def _pins(specs: list[str] | tuple[str, ...]) -> dict[str, str]:
    out = {}
    for spec in specs:
        match = re.match(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(.*)", spec)
        assert match, spec
        out[match.group(1).lower().replace("_", "-")] = match.group(2).replace(" ", "")
    return out


def test_the_training_extra_pins_what_the_cluster_venv_pins() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    training, cluster = _pins(extras["training"]), _pins(NEURON_PINS["0.4.5"])
    for name in ("transformers", "peft", "trl", "accelerate"):
        assert training[name] == cluster[name], f"{name}: pyproject {training[name]}, cluster {cluster[name]}"
    assert extras["neuron"] == ["optimum-neuron[neuronx,training]==0.4.5"]


def test_the_pins_that_numpy_1_implies_are_there() -> None:
    cluster = _pins(NEURON_PINS["0.4.5"])
    assert cluster["numpy"] == "<=1.26.4"  # optimum-neuron 0.4.5's neuronx extra
    assert cluster["pyarrow"] == "<26"  # pyarrow 26 needs NumPy 2 (proved by make check-neuron's import test)
