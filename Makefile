# Two entry points (README): `make run` and `make test`. Both set up .venv on first use (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= cpu,dev
PY := $(VENV)/bin/python
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.kosparse-installed

.PHONY: setup run test params lint bench clean-venv

# torch is installed first, pinned, so pip takes the local CPU build instead of a multi-GB CUDA one.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade "pip>=24"
	$(PY) -m pip install -q --disable-pip-version-check "torch==2.13.0"
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[$(EXTRAS)]"
	@touch $@

setup: $(STAMP)

# Compose conf/ into params.yaml exactly as `dvc exp run` does.
params: $(STAMP)
	$(PY) -m kosparse.params

# The main job: the whole pipeline on the configuration in params.yaml (offline default).
run: $(STAMP)
	PATH="$(BIN):$$PATH" dvc repro

test: $(STAMP)
	PATH="$(BIN):$$PATH" $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src stages tests bench
	$(BIN)/mypy

bench: $(STAMP)
	PATH="$(BIN):$$PATH" $(PY) bench/ingest_chunk.py

clean-venv:
	rm -rf $(VENV)
