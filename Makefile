# One set of developer commands; CI (.ci/run) calls them unchanged.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: install dev demo test lint bench docs screenshots chromium clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

dev: $(VENV)/.installed-dev

# The seed's scenarios, end to end, on a fresh embedded store under ./demo-store.
demo: install
	rm -rf demo-store
	CAIRN_DIR=$(CURDIR)/demo-store/store CAIRN_CACHE_DIR=$(CURDIR)/demo-store/cache \
		CAIRN_ARTIFACT_DIR=$(CURDIR)/demo-store/artifacts $(BIN)/cairn demo --workdir demo-store/work

# The browser tests drive Debian's Chromium (never a downloaded browser: there is no network).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else \
		echo "make: $(CHROMIUM) is missing: sudo apt-get install chromium (browser tests skip without it)"; \
	fi

chromium: $(CHROMIUM)

# --dist loadgroup keeps the browser tests (one xdist group) in one worker: one browser.
test: dev $(CHROMIUM)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

lint: dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: dev
	$(BIN)/python -m benchmarks

docs: dev
	$(BIN)/python -m cairn.cli.docs > docs/cli.md

# A picture of each page of the web UI (shown in the README), from a fresh sample store.
screenshots: dev $(CHROMIUM)
	$(BIN)/python -m tests.ui.screenshots

clean:
	rm -rf $(VENV) demo-store .bench .pytest_cache .mypy_cache .ruff_cache
