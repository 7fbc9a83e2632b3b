# One set of developer commands; CI (.ci/run) calls them unchanged.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: install dev demo test lint bench bench-scale bench-compare chaos docs screenshots chromium clean dist smoke test-min

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The distribution was called `cairn` before it got a name of its own: drop that old install.
UNINSTALL_OLD := rm -rf src/cairn.egg-info; $(PIP) uninstall -y cairn >/dev/null 2>&1 || true

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(UNINSTALL_OLD)
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(UNINSTALL_OLD)
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
		echo "make: $(CHROMIUM) is missing; running as root, so installing Debian's chromium" \
			"package now (apt-get install chromium) for the browser tests"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else \
		echo "make: $(CHROMIUM) is missing: sudo apt-get install chromium (browser tests skip without it)"; \
	fi

chromium: $(CHROMIUM)

# --dist loadgroup keeps the browser tests (one xdist group) in one worker: one browser.
test: dev $(CHROMIUM)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

# What would be published: the sdist, then the wheel built from it (python -m build), checked by
# twine and by a check that every file under src/cairn (templates, static files, migrations,
# py.typed) and the license are in both.
dist: dev
	rm -rf dist && mkdir dist
	$(BIN)/python -m build --outdir dist . > dist/build.log 2>&1 || { cat dist/build.log; exit 1; }
	$(BIN)/twine check --strict dist/*.whl dist/*.tar.gz
	$(BIN)/python -m tests.packaging.dist check dist

# The wheel in a fresh virtual environment as a user installs it (no checkout, no dev extras):
# cairn --version, cairn demo, the README's quickstart, the hints of missing extras, then with
# the server extra `cairn ui` and `cairn server` answering requests.
smoke: dist
	$(BIN)/python -m tests.packaging.dist smoke dist

# The lower bound of every runtime dependency range (tests/packaging/lower_bounds.py) in a
# separate environment, and the tests on it but the browser's and the generated CLI reference's
# (click's help layout differs by version). Not part of `make test`: it takes about 10 minutes.
VENV_MIN := .venv-min
test-min: dev
	rm -rf $(VENV_MIN)
	$(PYTHON) -m venv $(VENV_MIN)
	$(BIN)/python -m tests.packaging.lower_bounds > $(VENV_MIN)/constraints.txt
	$(VENV_MIN)/bin/python -m pip --disable-pip-version-check -q install \
		-c $(VENV_MIN)/constraints.txt -e '.[dev]'
	$(VENV_MIN)/bin/python -m tests.packaging.lower_bounds --check
	$(VENV_MIN)/bin/python -m pytest -n 2 --dist loadgroup -q -p no:randomly \
		--ignore tests/ui/test_browser.py \
		--deselect tests/test_docs_and_surface.py::test_cli_reference_is_current

lint: dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: dev
	$(BIN)/python -m benchmarks

# Issue 18 alone: a million tiny files (CAIRN_BENCH_SCALE_FILES=N for a quicker run).
bench-scale: dev
	$(BIN)/python -m benchmarks scale

# Issue 13's independent check: cairn beside git, DVC and W&B's client (offline), each a whole
# process on the same data sets. W&B's client and DVC are not cairn's dependencies: they go into
# their own venv (pinned), called as processes of it.
COMPARE_VENV := .bench/compare-venv
$(COMPARE_VENV)/.installed:
	$(PYTHON) -m venv $(COMPARE_VENV)
	$(COMPARE_VENV)/bin/python -m pip --disable-pip-version-check -q install wandb==0.31.0 dvc==3.67.1
	touch $@

bench-compare: dev $(COMPARE_VENV)/.installed
	$(BIN)/python -m benchmarks.compare --venv $(COMPARE_VENV)

# The attack kit: SIGKILL rounds, concurrent writers, gc racing writers, the authorization matrix,
# a full disk, a PostgreSQL restart, schemathesis; prints one table (CHAOS_ROUNDS=N scales it).
chaos: dev
	$(BIN)/python -m tests.chaos

docs: dev
	$(BIN)/python -m cairn.cli.docs > docs/cli.md

# A picture of each page of the web UI (shown in the README), from a fresh sample store.
screenshots: dev $(CHROMIUM)
	$(BIN)/python -m tests.ui.screenshots

clean:
	rm -rf $(VENV) $(VENV_MIN) dist src/*.egg-info demo-store .bench .pytest_cache .mypy_cache .ruff_cache
