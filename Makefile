# One obvious command per chore. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
WEB_EXT_DIR ?= .tools/web-ext
WEB_EXT := $(WEB_EXT_DIR)/node_modules/.bin/web-ext

.PHONY: run test lint bench clean venv venv-test dist web-ext

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
	$(BIN)/freight daemon
endif

lint: venv-test
	$(BIN)/ruff check .
	$(BIN)/mypy

# The packaging tests lint the Firefox package with web-ext (an npm package), installed once.
test: venv-test lint $(WEB_EXT)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Everything a release ships, into $(DIST)/: the wheel and the sdist (the wheel carries the
# extension and the native host), the Chromium .zip and the Firefox .xpi (docs/HOST.md).
DIST ?= dist
dist: $(BIN)/python
	$(BIN)/pip install -q 'build>=1.2'
	rm -rf $(DIST)
	$(BIN)/python -m build --outdir $(DIST) .
	$(BIN)/python tools/build_extension.py --out $(DIST)

# Mozilla's add-on linter, which the tests run on the Firefox package.
web-ext: $(WEB_EXT)
$(WEB_EXT):
	npm install --no-save --no-audit --no-fund --prefix $(WEB_EXT_DIR) web-ext@8

bench: venv
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist .tools *.egg-info .pytest_cache .ruff_cache .mypy_cache
