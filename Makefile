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

## The system libraries the window (Qt's xcb platform plugin) loads, Debian/Ubuntu names; the
## list is streamseg_app.preflight.GUI_PACKAGES (tests/test_app_xvfb.py checks they agree).
GUI_DEBS := libdbus-1-3 libegl1 libfontconfig1 libfreetype6 libgl1 libglib2.0-0 libglvnd0 libglx0 \
	libx11-6 libx11-xcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
	libxcb-render-util0 libxcb-render0 libxcb-shape0 libxcb-shm0 libxcb-sync1 libxcb-util1 \
	libxcb-xfixes0 libxcb-xkb1 libxcb1 libxkbcommon-x11-0 libxkbcommon0

.PHONY: gui-deps
## Install them with apt-get (as root, or through sudo); elsewhere, print what to install.
gui-deps:
	@if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "gui-deps: no apt-get here; install your distribution's packages of: $(GUI_DEBS)"; exit 1; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(GUI_DEBS); \
	elif command -v sudo >/dev/null 2>&1; then \
	  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(GUI_DEBS); \
	else \
	  echo "gui-deps: not root and no sudo; as root run: apt-get install $(GUI_DEBS)"; exit 1; \
	fi

clean:
	rm -rf $(VENV) streamseg-demo streamseg-out .pytest_cache
