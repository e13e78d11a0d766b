"""The check-neuron tier: runs only in the venv that `make check-neuron` builds (optimum-neuron 0.4.5 and
the cluster's versions, scripts/setup.sh), never in the main one, where optimum-neuron is absent."""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("optimum") is None or importlib.util.find_spec("optimum.neuron") is None:
    collect_ignore_glob = ["test_*.py"]
