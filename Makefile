# One quality gate: `make test` installs what is missing, lints and runs every test.
# `make demo` runs the whole pipeline on the local two-node Slurm cluster.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
VENV ?= .venv
PY := $(VENV)/bin/python
# jsii prints a long end-of-life banner for Node 20 on every synth otherwise.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
SHELL_SCRIPTS = $(shell git ls-files '*.sh' '*.sbatch' 'jobs/submit' 'lifecycle/*.sh' 'tests/neuron/bin/*' .ci/run 2>/dev/null | sort -u)

.PHONY: setup lint test unit check-neuron demo down synth bench clean
NEURON_CHECK_VENV ?= .venv-neuron

setup:
	@bash scripts/setup.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy infra training hpctl lifecycle
	shellcheck -x $(SHELL_SCRIPTS)

## the README's test command: install, lint, every test (the local Slurm ones included)
test: lint
	$(MAKE) --no-print-directory unit
	$(VENV)/bin/pytest -m slurm
	$(MAKE) --no-print-directory check-neuron

## the neuron backend through optimum-neuron 0.4.5's own code, torch_xla/neuronx_distributed simulated
check-neuron: setup
	$(NEURON_CHECK_VENV)/bin/python -m pytest tests/neuron -p no:cacheprovider

## tests that need no Slurm daemons, spread over the cores a file at a time (module fixtures built once),
## files marked `heavy` first (tests/conftest.py); the Slurm tests share one cluster, so they run in one
## process (`make test`)
PYTEST_WORKERS ?= auto
unit: setup
	$(VENV)/bin/pytest -m "not slurm" -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

## the README's main command: the full pipeline on the local Slurm cluster
demo: setup
	bash scripts/demo.sh

## stop the local Slurm cluster
down:
	bash localslurm/down.sh

synth: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" node_modules/.bin/cdk synth --quiet

## SIZE=8b: the same at Llama-3-8B's shape (16 GB; needs about 34 GB free disk, checked first)
SIZE ?= small
bench: setup
	$(PY) bench/consolidate_merge.py --size $(SIZE)

clean:
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache
