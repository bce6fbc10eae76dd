# Set-up is part of every target: a fresh clone needs only python3 (3.11) and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test test-fast bench clean

# Installs what a plain `pip install -e ".[dev]"` does, nothing more (.ci/run checks that a plain
# `pip install .` runs `streamseg demo` to its MOT metrics).
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(BIN)/.installed

## The main job on its embedded default: a generated clip through the whole pipeline.
demo: setup
	$(BIN)/streamseg demo

## Every test (the command CI runs).
test: setup
	$(BIN)/python -m pytest -m "slow or not slow"

## The tests that take seconds, for development.
test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

bench: setup
	$(BIN)/python benchmarks/pipeline.py

clean:
	rm -rf $(VENV) streamseg-demo streamseg-out .pytest_cache
