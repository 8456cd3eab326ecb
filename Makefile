# make search  : set up .venv (first time) and run the default architecture search
# make test    : set up .venv (first time), start the test services, run the whole test suite
# make gpu-check: the `gpu` tests and benchmarks/gpu_path.py (skipped / reduced without a GPU)
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel of torch lies on disk on the project's machines; override for a CUDA build.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed
# pip lists every local index folder it skips; keep the set-up output readable.
QUIET_PIP := grep -v "^WARNING: Location" || true

.PHONY: search test test-fast gpu-check lint format clean setup

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH)" 2>&1 | $(QUIET_PIP)
	$(PY) -m pip install -q -e ".[dev]" 2>&1 | $(QUIET_PIP)
	# W&B's sweep schema for tests/nas/test_sweep.py; --no-deps: its numpy<2 pin would downgrade numpy.
	$(PY) -m pip install -q --no-deps "sweeps>=0.3" 2>&1 | $(QUIET_PIP)
	$(PY) -c "import torch, optuna, pytorch_lightning, hydra, tokenizers"
	touch $(STAMP)

search: $(STAMP)
	$(PY) nas/search.py $(ARGS)

# PostgreSQL and a one-node SLURM for the shared-study tests: installed (first time) and started
# by scripts/services.sh, stopped when the tests end, however they end. Two pytest-xdist workers
# of one torch thread each (XDIST=0: one process): a test file stays on one worker, and the files
# that share the services run one after another (tests/conftest.py, xdist_group).
XDIST ?= 2
XDIST_ARGS = $(if $(filter 0,$(XDIST)),,-n $(XDIST) --dist loadgroup)
XDIST_ENV = $(if $(filter 0,$(XDIST)),,OMP_NUM_THREADS=1)
test: $(STAMP)
	bash scripts/services.sh start; trap 'bash scripts/services.sh stop' EXIT; \
	$(XDIST_ENV) $(PY) -m pytest -q $(XDIST_ARGS) --durations=15 $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# The GPU path: every `gpu`-marked test (each skips itself without CUDA), then the staged trial of
# a d_model 512 model on the built-in suite in bf16 (MFU, tokens/s per stage, SDPA kernels; under
# 8 minutes on one GPU). Without a GPU the benchmark runs its reduced CPU mode. A GPU needs a CUDA
# build of torch in .venv (TORCH above). GPU_ARGS: options of gpu_path.py.
gpu-check: $(STAMP)
	$(PY) -m pytest -q -m gpu tests $(PYTEST_ARGS)
	$(PY) benchmarks/gpu_path.py $(GPU_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf outputs .pytest_cache
