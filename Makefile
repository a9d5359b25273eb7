# One obvious command per chore. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint bench clean venv venv-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

venv: $(BIN)/python
	$(BIN)/pip install -q -e .

# The tray's gtk/appindicator backends need PyGObject, built against Debian's
# libgirepository1.0-dev and libcairo2-dev (which .ci/run installs).
venv-test: $(BIN)/python
	$(BIN)/pip install -q -e '.[test,tray-gtk]'

# The tray's menu needs PyGObject: built into the venv when this system can build it, else
# one message says what to install and the icon runs without a menu (tools/tray_deps.py).
.PHONY: venv-tray
venv-tray: venv
	@$(BIN)/python tools/tray_deps.py

# Runs Freight's main job: registers the native host, then the daemon with its tray.
run: venv-tray
ifdef URL
	$(BIN)/freight get $(URL)
else
	$(BIN)/freight install
	@echo
	@echo "Load the extension: open chrome://extensions, turn on Developer mode,"
	@echo "click 'Load unpacked' and choose $(CURDIR)/extension"
	@echo "(Firefox: about:debugging -> This Firefox -> Load Temporary Add-on -> extension/manifest.json)"
	@echo
	$(BIN)/freight daemon
endif

lint: venv-test
	$(BIN)/ruff check .
	$(BIN)/mypy

test: venv-test lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: venv
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
