"""Start-up does only what it needs: what `import cairn`, `cairn --help` and opening a store load.

Each check runs a new interpreter and asserts on ``sys.modules`` (never on time): the time a user
feels is `make bench` (benchmarks/bench_start.py). The lazy re-exports (cairn._lazy) are checked
against the ``if TYPE_CHECKING:`` imports type checkers see, so the two lists cannot drift apart.
A re-log's imports are checked by tests/sdk/test_relog.py, in the new process that checks its
reads (one interpreter for both).
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests._modules import heavy

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"
REPORT = """
import json, sys
print(json.dumps(sorted(sys.modules)))
"""


def loaded_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules a new interpreter has loaded after running ``code``."""
    out = subprocess.run(
        [sys.executable, "-c", code + REPORT],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_cairn_loads_no_heavy_module() -> None:
    modules = loaded_after("import cairn")
    assert heavy(modules) == []
    assert not any(m.startswith(("cairn.sdk", "cairn.service", "cairn.catalog")) for m in modules)


@pytest.mark.parametrize("option", ["--help", "--version"])
def test_cli_builds_its_parser_without_the_store(option: str) -> None:
    code = f"""
from cairn.cli import cli
try:
    cli([{option!r}])
except SystemExit:
    pass
"""
    modules = loaded_after(code)
    assert heavy(modules) == []
    assert not any(
        m.startswith(("cairn.catalog", "cairn.service", "cairn.storage")) for m in modules
    )


@pytest.mark.no_store
def test_opening_a_current_store_does_not_load_alembic(tmp_path: pathlib.Path) -> None:
    env = {"CAIRN_DIR": str(tmp_path / "store"), "CAIRN_CACHE_DIR": str(tmp_path / "cache")}
    open_store = "import cairn.sdk; cairn.sdk.current_service().close()"
    assert "alembic" in {m.split(".")[0] for m in loaded_after(open_store, env)}  # created it
    modules = loaded_after(open_store, env)
    assert "cairn.catalog._embedded" in modules  # the store was opened (sqlite3 until needed)
    assert [m for m in modules if m.split(".")[0] in ("alembic", "sqlalchemy")] == []


def test_the_server_client_does_not_load_server_or_catalog_code() -> None:
    code = """
import cairn.sdk
service = cairn.sdk.current_service()
assert type(service).__name__ == "HttpService", service
"""
    env = {"CAIRN_BASE_URL": "http://127.0.0.1:9", "CAIRN_API_KEY": "not-used"}
    modules = loaded_after(code, env)
    assert "cairn.service._http" in modules
    banned = {"sqlalchemy", "alembic", "fastapi", "starlette", "uvicorn"}
    assert sorted(m for m in modules if m.split(".")[0] in banned) == []
    assert not any(m.startswith(("cairn.server", "cairn.catalog", "cairn.ui")) for m in modules)


def test_a_staging_worker_loads_what_it_uses_and_nothing_else(tmp_path: pathlib.Path) -> None:
    # A worker process started as the pool starts it (its very command: no site, no runpy),
    # opening its blob store, its input closed at once: everything it imports before its first
    # read. cairn.core loaded whole made its start a third longer; typing, dataclasses (with
    # inspect, ast, dis), re, enum, pickle and subprocess another half (0.08 -> 0.04 s of CPU).
    from cairn.sdk._stage_pool import WORKER

    code = WORKER[-1] + "\nimport sys\nprint(' '.join(sorted(sys.modules)))"  # json loads re
    out = subprocess.run(
        [sys.executable, *WORKER[:-1], code, str(tmp_path / "blobs"), "1048576", "1"],
        check=True,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    modules = set(out.stdout.split())
    assert {"cairn.core._digest", "cairn.sdk._whole", "cairn.storage._local_packs"} <= modules
    assert heavy(modules) == []
    unneeded = ("._records", "._search", "._manifest", "._codec", "._names", "._history")
    assert (
        sorted(m for m in modules if m.startswith(tuple("cairn.core" + u for u in unneeded))) == []
    )
    unused = {"typing", "dataclasses", "inspect", "re", "enum", "pickle", "subprocess", "site"}
    assert sorted(unused & modules) == []
    assert sorted(m for m in modules if m.startswith("cairn.storage._base")) == []


def read_init(package: str) -> tuple[dict[str, str], set[str]]:
    """A package __init__'s imports under ``if TYPE_CHECKING:`` (``{name: module}``) and the
    names it binds at import time (imports, assignments, functions)."""
    path = SRC.joinpath(*package.split("."), "__init__.py")
    typed: dict[str, str] = {}
    eager: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom) and stmt.module != "typing":
                    for alias in stmt.names:
                        typed[alias.asname or alias.name] = str(stmt.module)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            eager.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.Assign):
            eager.update(n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, ast.FunctionDef):
            eager.add(node.name)
    return typed, eager


@pytest.mark.parametrize(
    "package",
    ["cairn", "cairn.core", "cairn.sdk", "cairn.service", "cairn.catalog", "cairn.storage"],
)
def test_lazy_exports_match_what_type_checkers_see(package: str) -> None:
    module = importlib.import_module(package)
    typed, eager = read_init(package)
    assert typed, f"{package} has no TYPE_CHECKING imports"
    assert not set(typed) & eager
    # Every public name is either bound at import or lazy and visible to type checkers.
    dynamic = {"run", "summary"}  # the active run and its summary, read when asked for
    assert set(module.__all__) - dynamic == set(typed) | (eager & set(module.__all__))
    for name, origin in typed.items():
        assert getattr(module, name) is getattr(importlib.import_module(origin), name), name
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = module.nothing_here


@pytest.mark.no_store
def test_listing_a_current_store_loads_no_sqlalchemy(tmp_path: pathlib.Path) -> None:
    env = {"CAIRN_DIR": str(tmp_path / "store"), "CAIRN_CACHE_DIR": str(tmp_path / "cache")}
    ls = """
from cairn.cli import cli
try:
    cli(["artifact", "ls", "p"])
except SystemExit:
    pass
"""
    # The first call creates the store (through the catalog); the next ones only read it.
    assert "sqlalchemy" in {m.split(".")[0] for m in loaded_after(ls, env)}
    modules = loaded_after(ls, env)
    assert "cairn.catalog._quick" in modules
    assert heavy(modules) == []
    assert not any(
        m.startswith(("cairn.catalog._catalog", "cairn.service._local")) for m in modules
    )
    assert not {"cairn.storage._s3", "cairn.storage._local", "cairn.sdk._artifact"} & modules
