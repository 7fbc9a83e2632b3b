"""Shared fixtures: every test gets its own embedded store, cache and working directory."""

from __future__ import annotations

import compileall
import os
import pathlib
import re
import shutil
import sys
from collections.abc import Callable, Generator, Iterator

import pytest

import cairn
import cairn.service
from cairn.sdk import reset_services
from tests._infra import CairnServer, InProcessServer, Postgres, S3Server, reset_database

_CAIRN_VARS = (
    "CAIRN_DIR",
    "CAIRN_BASE_URL",
    "CAIRN_API_KEY",
    "CAIRN_CACHE_DIR",
    "CAIRN_ARTIFACT_DIR",
    "CAIRN_PROJECT",
    "CAIRN_ENTITY",
    "CAIRN_RUN_GROUP",
    "CAIRN_SILENT",
    "CAIRN_PROGRESS",
    "CAIRN_PROGRESS_SECONDS",
    "CAIRN_JOB_TYPE",
    "CAIRN_RUN_NAME",
    "CAIRN_RUN_ID",
    "CAIRN_MODE",
    "CAIRN_RUN_DIR",
    "CAIRN_DATA_DIR",
    # W&B's variables of the same meaning are honoured when the CAIRN_* one is unset.
    "WANDB_PROJECT",
    "WANDB_ENTITY",
    "WANDB_RUN_GROUP",
    "WANDB_JOB_TYPE",
    "WANDB_NAME",
    "WANDB_RUN_ID",
    "WANDB_ARTIFACT_DIR",
    "WANDB_CACHE_DIR",
    "WANDB_SILENT",
    "WANDB_MODE",
    "WANDB_DIR",
    "WANDB_DATA_DIR",
    "AWS_S3_ENDPOINT_URL",
)


ROOT = pathlib.Path(__file__).resolve().parent.parent
_REWRITTEN = re.compile(r"(^|/)(test_[^/]*|conftest)\.py$")  # pytest compiles these its own way


def pytest_configure(config: pytest.Config) -> None:
    """Compile this checkout's code to bytecode once, in the process that starts the run, as
    installing a package does (and ``make bench``): with ``PYTHONDONTWRITEBYTECODE`` set (CI,
    this project's machines) every process the suite starts (``cairn`` commands, servers,
    ``python -c`` children, the pytest-xdist workers) otherwise compiles the ~220 modules it
    imports from source again: ~0.1-0.3 s of CPU each, hundreds of processes a run."""
    if hasattr(config, "workerinput"):
        return  # a pytest-xdist worker: the process that started it compiled them
    for sub in ("src/cairn", "tests", "benchmarks"):
        if (ROOT / sub).is_dir():
            compileall.compile_dir(ROOT / sub, quiet=2, rx=_REWRITTEN)


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> Generator[None, object, object]:
    """Keep the test modules pytest rewrites (assertions) in its bytecode cache even where
    ``PYTHONDONTWRITEBYTECODE`` is set: each worker otherwise parses and rewrites all ~235
    test modules again on every run."""
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, False
    try:
        return (yield)
    finally:
        sys.dont_write_bytecode = saved


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Under ``--dist loadgroup``, a test marked ``xdist_group`` carries its group in its id
    (pytest-xdist puts it there; its scheduler reads it). If it does not, the groups are silently
    spread over the workers, each making what a group shares (the 100k tree, a browser) for
    itself: pytest 9.2 with pytest-xdist 3.8 (pytest-xdist#1386), hence pytest < 9.2."""
    grouped = item.get_closest_marker("xdist_group") is not None
    if grouped and getattr(item.config.option, "loadgroup", False) and "@" not in item.nodeid:
        pytest.fail("--dist loadgroup did not group this test: see pyproject.toml's pytest")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long tests (marked ``slow``) first, each module's in its order: pytest-xdist deals tests out
    in this order (after the ``xdist_group`` groups, largest first), so no long test starts last
    while the other worker has nothing left to run."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# -- real components, one of each per test process (pytest-xdist worker) --------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    pg = Postgres()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    server = S3Server()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def server_local(
    postgres: Postgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CairnServer]:
    """A cairn server on PostgreSQL and a local blob directory."""
    db = postgres.create_database("cairn_local")
    server = CairnServer(db, str(tmp_path_factory.mktemp("server-blobs")))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def server_s3(postgres: Postgres, s3: S3Server) -> Iterator[CairnServer]:
    """A cairn server on PostgreSQL and S3 (moto)."""
    db = postgres.create_database("cairn_s3")
    server = CairnServer(db, s3.url("blobs"), s3.env)
    yield server
    server.stop()


InProcess = Callable[[str, str], InProcessServer]


@pytest.fixture(scope="session")
def inprocess(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcess]:
    """``inprocess(catalog, store)``: the server app in this process (the fast tier), on a
    catalog ("postgres" or "sqlite") and a blob store ("local" or "s3"), made once per session.
    Tests empty its catalog with ``reset_database(server.db)``."""
    servers: dict[tuple[str, str], InProcessServer] = {}

    def get(catalog: str, store: str) -> InProcessServer:
        found = servers.get((catalog, store))
        if found is not None:
            return found
        where = tmp_path_factory.mktemp(f"inprocess-{catalog}-{store}")
        if catalog == "postgres":
            pg: Postgres = request.getfixturevalue("postgres")
            db = pg.create_database(f"cairn_inprocess_{store}")
        else:
            db = str(where / "catalog.sqlite")
        env: dict[str, str] | None = None
        if store == "s3":
            s3: S3Server = request.getfixturevalue("s3")
            blobs, env = s3.url(f"inprocess-{catalog}"), s3.env
        else:
            blobs = str(where / "blobs")
        server = servers[catalog, store] = InProcessServer(db, blobs, env)
        return server

    yield get
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="session")
def store_template(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """An empty embedded store, made once per test process by the code that makes every store
    (Alembic's migrations included): ``cairn_env`` copies it (a file copy) where a test's
    store goes instead of migrating a new one for each test (~0.1 s of CPU, several fsyncs).
    Tests of how a store comes to be are marked ``no_store``."""
    from cairn.service import LocalService

    root = tmp_path_factory.mktemp("store-template") / "store"
    LocalService.open(str(root)).close()
    assert not list(root.glob("*-wal")), "the template's catalog must be whole in its file"
    return root


@pytest.fixture
def backend() -> str:
    """Where the SDK's store is: "embedded" here; tests/sdk run each test on "server" too."""
    return "embedded"


@pytest.fixture(autouse=True)
def cairn_env(
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
    request: pytest.FixtureRequest,
) -> Iterator[pathlib.Path]:
    """A fresh store in ``tmp_path/store`` (a copy of ``store_template``; none at all for a test
    marked ``no_store``), or an emptied server; the test runs in ``tmp_path/work``."""
    for var in _CAIRN_VARS:
        monkeypatch.delenv(var, raising=False)
    if backend == "server" and request.node.get_closest_marker("process_server"):
        server: CairnServer = request.getfixturevalue("server_s3")
        reset_database(server.db)
        monkeypatch.setenv("CAIRN_BASE_URL", server.url)
        monkeypatch.setenv("CAIRN_API_KEY", server.create_key("tester", "*/*", "write"))
    elif backend == "server":
        # The server app in this process (PostgreSQL + S3): the SDK's HttpService reaches it
        # through an in-process transport, so no request crosses a socket to it.
        app: InProcessServer = request.getfixturevalue("inprocess")("postgres", "s3")
        reset_database(app.db)
        monkeypatch.setattr(
            cairn.service,
            "http_service",
            lambda _url, key, cache, **kw: app.service(key, cache, **kw),
        )
        monkeypatch.setenv("CAIRN_BASE_URL", app.url)
        monkeypatch.setenv("CAIRN_API_KEY", app.create_key("tester", "*/*", "write"))
    elif not request.node.get_closest_marker("no_store"):
        template: pathlib.Path = request.getfixturevalue("store_template")
        shutil.copytree(template, tmp_path / "store")
    monkeypatch.setenv("CAIRN_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("CAIRN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CAIRN_ARTIFACT_DIR", str(tmp_path / "artifacts"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    yield tmp_path
    cairn.finish()
    reset_services()


def write(path: str | os.PathLike[str], content: bytes | str) -> str:
    """Write a file (creating directories); return its path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(content.encode() if isinstance(content, str) else content)
    return path
