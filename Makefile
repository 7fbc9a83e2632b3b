# One set of developer commands; CI (.ci/run) calls them unchanged.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: install dev demo test lint bench docs clean

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

test: dev
	$(BIN)/python -m pytest -n 2 -q

lint: dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: dev
	$(BIN)/python -m benchmarks

docs: dev
	$(BIN)/python -m cairn.cli.docs > docs/cli.md

clean:
	rm -rf $(VENV) demo-store .bench .pytest_cache .mypy_cache .ruff_cache
