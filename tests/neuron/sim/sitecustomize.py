"""On PYTHONPATH in the check-neuron tier only: make the inference-only Neuron modules importable."""

import _import_only

_import_only.install()
