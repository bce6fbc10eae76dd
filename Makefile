# Set-up is part of every target: a fresh clone needs only python3 (3.11) and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test test-fast bench clean

# trackeval (MOT Challenge scoring) pins the GUI opencv-python, which clashes with our headless
# build; its MOT code never imports OpenCV, so it is installed without its dependencies.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps "trackeval==1.3.0"
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
