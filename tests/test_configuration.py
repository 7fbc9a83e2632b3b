"""Configuration is read once (issue 10): the environment is read by the module that turns it into
``Settings`` (the SDK's) or hands it to ``ServerConfig`` (the server's), and by the entry points
listed here, each for the reason given; no module below them (service, catalog, storage, core, the
rest of the SDK) reads it. A scan of ``src/`` by its syntax trees, so a new read fails here."""

from __future__ import annotations

import ast
import functools
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src"

# Module -> why it may touch the process's environment.
READERS = {
    "cairn/sdk/_settings.py": "the one place the SDK's settings are read (Settings.from_env)",
    "cairn/server/_serve.py": "entry point of uvicorn's worker processes (ServerConfig.from_env)",
    "cairn/cli/_server.py": "entry point: `cairn server` (ServerConfig.from_env)",
    "cairn/cli/_maintenance.py": "entry point: `cairn gc/verify --db --store` (ServerConfig)",
    "cairn/sdk/_login.py": "W&B's login() sets CAIRN_API_KEY/CAIRN_BASE_URL for the process",
    "cairn/sdk/_stage_pool.py": "starts the staging worker children with this environment",
    "cairn/sdk/_reference_s3.py": "AWS's own variables for a user's s3:// references (boto3's)",
    "cairn/demo.py": "entry point: `make demo` runs the CLI in subprocesses",
}
# Module -> why it may call ``Settings.from_env()`` / ``ServerConfig.from_env(...)``: entry points
# of the SDK (a run, the Api, a CLI operation, an fsspec file system), each once per call.
ENTRY_POINTS = {
    "cairn/sdk/_settings.py",
    "cairn/sdk/_init.py",
    "cairn/sdk/_session.py",
    "cairn/sdk/_resolver.py",
    "cairn/sdk/_listing.py",
    "cairn/sdk/_operations.py",
    "cairn/sdk/_cache_cleanup.py",
    "cairn/sdk/_sync.py",
    "cairn/sdk/_bundle.py",
    "cairn/fs/_filesystem.py",
    "cairn/cli/_main.py",
    "cairn/cli/_server.py",
    "cairn/cli/_maintenance.py",
    "cairn/server/_serve.py",
}
# Layers where no configuration is read at all: it is passed down to them.
PASSED_DOWN = ("cairn/core/", "cairn/storage/", "cairn/catalog/", "cairn/service/")
ENVIRON = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


@functools.cache
def _modules() -> list[tuple[str, ast.Module]]:
    return [
        (str(p.relative_to(SRC)), ast.parse(p.read_text(), str(p)))
        for p in sorted(SRC.rglob("*.py"))
    ]


def environment_reads(tree: ast.Module) -> list[int]:
    """Lines where ``tree`` touches the process environment (``os.environ``, ``os.getenv``, ...,
    also imported by name)."""
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ENVIRON
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ) or (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(alias.name in ENVIRON for alias in node.names)
        ):
            lines.append(node.lineno)
    return lines


def settings_reads(tree: ast.Module) -> list[int]:
    """Lines calling ``<something>.from_env(...)``: the settings read from the environment."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "from_env"
    ]


def test_only_the_listed_modules_read_the_environment() -> None:
    found = {name: environment_reads(tree) for name, tree in _modules()}
    extra = {name: lines for name, lines in found.items() if lines and name not in READERS}
    assert not extra, f"read the environment: pass the setting down from Settings instead: {extra}"
    stale = [name for name in READERS if not found.get(name)]
    assert not stale, f"listed as readers but read nothing (remove them): {stale}"


def test_settings_are_read_only_at_entry_points() -> None:
    found = {name: settings_reads(tree) for name, tree in _modules()}
    extra = {name: lines for name, lines in found.items() if lines and name not in ENTRY_POINTS}
    assert not extra, f"settings read below an entry point: pass them down instead: {extra}"
    assert not [n for n in READERS | dict.fromkeys(ENTRY_POINTS) if n.startswith(PASSED_DOWN)]


@pytest.mark.parametrize(
    "source",
    [
        "import os\nx = os.environ.get('CAIRN_TRANSFER_THREADS')",
        "import os\nx = os.getenv('CAIRN_DIR')",
        "from os import environ\nx = environ['A']",
        "import os\nos.environ['A'] = 'b'",
    ],
)
def test_the_scan_sees_every_form_of_a_read(source: str) -> None:
    assert environment_reads(ast.parse(source))


def test_the_scan_sees_a_settings_read() -> None:
    assert settings_reads(ast.parse("from cairn.sdk import Settings\ns = Settings.from_env()"))
    assert not settings_reads(ast.parse("s = session.settings"))
