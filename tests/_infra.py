"""Real components for tests and benchmarks: a PostgreSQL cluster, an S3 server (moto), and cairn
servers as uvicorn processes, all on loopback, started here and stopped at exit.

PostgreSQL must be installed (``initdb`` and ``pg_ctl`` on PATH or under
/usr/lib/postgresql/*/bin); as root, the cluster runs as the ``postgres`` user, since initdb
refuses root. ``CAIRN_TEST_POSTGRES_URL`` points the tests at a running server instead.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import glob
import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx

ADMIN_KEY = "test-admin-key-" + uuid.uuid4().hex
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _die_with_parent() -> None:
    """In a child before exec: get SIGTERM when the process that started it dies (Linux), so an
    interrupted test run leaves no server behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(
    port: int, proc: subprocess.Popen[bytes] | None, what: str, timeout: float = 120
) -> None:
    # Generous: it returns as soon as the port answers (or the process dies), and a server
    # starting on a loaded machine took over 30 s in parallel runs.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout} s")


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for path in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        return path
    raise RuntimeError(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")


class Postgres:
    """A throwaway PostgreSQL cluster on loopback (fsync off: tests, not durability)."""

    def __init__(self) -> None:
        self.url = os.environ.get("CAIRN_TEST_POSTGRES_URL", "")
        self._dir: str | None = None
        if self.url:
            return
        self._dir = tempfile.mkdtemp(prefix="cairn-pg-")
        self.port = free_port()
        data = os.path.join(self._dir, "data")
        as_postgres: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self._dir, "postgres", "postgres")
            as_postgres = ["runuser", "-u", "postgres", "--"]
        self._as = as_postgres
        self._data = data
        subprocess.run(
            [
                *as_postgres,
                _pg_bin("initdb"),
                "-D",
                data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        opts = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -k {self._dir}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=300 -c shared_buffers=128MB"
        )
        self._opts = opts
        self._start()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}"
        atexit.register(self.stop)  # pg_ctl daemonizes: stop the cluster even if a test aborts

    def _start(self) -> None:
        assert self._dir is not None
        subprocess.run(
            [
                *self._as,
                _pg_bin("pg_ctl"),
                "-D",
                self._data,
                "-o",
                self._opts,
                "-l",
                os.path.join(self._dir, "log"),
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
        )

    def restart(self, down_seconds: float) -> None:
        """Stop the cluster (as an operator restarting it would), wait, start it again."""
        assert self._dir is not None, "only a cluster of our own can be restarted"
        subprocess.run(
            [*self._as, _pg_bin("pg_ctl"), "-D", self._data, "-m", "fast", "-w", "stop"],
            check=True,
            capture_output=True,
        )
        time.sleep(down_seconds)
        self._start()

    @property
    def pid(self) -> int:
        """The cluster's postmaster (its backends are its children); 0 for an external one."""
        if self._dir is None:
            return 0
        with open(os.path.join(self._data, "postmaster.pid")) as f:
            return int(f.readline())

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        import psycopg

        with psycopg.connect(self.url + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"{self.url}/{name}"

    def stop(self) -> None:
        if self._dir is None:
            return
        subprocess.run(
            [*self._as, _pg_bin("pg_ctl"), "-D", self._data, "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None


class S3Server:
    """moto's standalone S3 server on loopback, with one bucket."""

    def __init__(self, bucket: str = "cairn-test") -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.bucket = bucket
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **S3_ENV},
            preexec_fn=_die_with_parent,
        )
        _wait_port(self.port, self.proc, "moto")
        self.env = {**S3_ENV, "AWS_ENDPOINT_URL": self.endpoint}
        client = self.client()
        client.create_bucket(Bucket=bucket)
        client.close()

    def client(self, config: object = None):  # type: ignore[no-untyped-def]
        """A boto3 client of this server (``config``: a ``botocore.config.Config``, if any)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=config,
        )

    def url(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class CairnServer:
    """``cairn server`` as a real process (uvicorn) on a free port."""

    def __init__(
        self, db: str, store: str, env: dict[str, str] | None = None, *, migrate: bool = True
    ) -> None:
        self.db = db
        self.store = store
        self.env = {**os.environ, **(env or {}), "CAIRN_ADMIN_KEY": ADMIN_KEY}
        for var in ("CAIRN_BASE_URL", "CAIRN_API_KEY"):
            self.env.pop(var, None)
        if migrate:
            # In this process: what `cairn server migrate --db` does (that command is run as a
            # process by tests/server/test_server_process.py), without starting Python and
            # importing the server once more for each server (~1.5 s of CPU each).
            from cairn.server import migrate as migrate_catalog

            migrate_catalog(db)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        # A file, not a pipe: a pipe nobody reads blocks the server once it is full.
        fd, self.log_path = tempfile.mkstemp(prefix="cairn-server-", suffix=".log")
        with os.fdopen(fd, "wb") as log:  # the child keeps its own copy of the handle
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cairn",
                    "server",
                    "--db",
                    self.db,
                    "--store",
                    self.store,
                    "--port",
                    str(self.port),
                ],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                preexec_fn=_die_with_parent,
            )
        try:
            _wait_port(self.port, self.proc, "cairn server")
        except RuntimeError:
            with open(self.log_path) as f:
                err = f.read()
            raise RuntimeError(f"cairn server did not start: {err[-3000:]}") from None

    def kill(self) -> None:
        """SIGKILL: no cleanup, as a crash."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None

    def create_key(self, user: str, project: str | None = None, role: str = "write") -> str:
        resp = httpx.post(
            f"{self.url}/api/v1/keys",
            json={"user": user, "project": project, "role": role},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=30,
        )
        resp.raise_for_status()
        return str(resp.json()["key"])


class SyncASGITransport(httpx.BaseTransport):
    """A sync httpx transport over an ASGI app in this process.

    httpx's own ``ASGITransport`` is async-only; this one runs it on an event loop in a
    background thread (anyio's blocking portal), so a sync ``httpx.Client`` (``HttpService``,
    several threads at a time) calls the app with no socket and no process in between. A request
    body is read in full first, and so is the response (the app's server errors are raised here,
    with their traceback, instead of becoming a 500).
    """

    def __init__(self, app: Any) -> None:
        import anyio.from_thread

        self._asgi = httpx.ASGITransport(app=app)
        self._stack = contextlib.ExitStack()
        self._portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def call() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            req = httpx.Request(request.method, request.url, headers=request.headers, content=body)
            resp = await self._asgi.handle_async_request(req)
            content = await resp.aread()
            return resp.status_code, resp.headers.raw, content

        status, headers, content = self._portal.call(call)
        return httpx.Response(status, headers=headers, content=content, request=request)

    def close(self) -> None:
        """Clients close their transport; this one is shared by many: ``shutdown`` ends it."""

    def shutdown(self) -> None:
        self._stack.close()


@contextlib.contextmanager
def _environ(env: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class InProcessServer:
    """cairn's FastAPI app in this process, over a catalog (PostgreSQL or SQLite) and a blob
    store (a directory or S3): the fast tier of server tests. ``service()`` gives an
    ``HttpService`` that reaches it through ``SyncASGITransport``; ``url`` is a name only."""

    url = "http://cairn.in-process"

    def __init__(
        self, db: str, store: str, env: Mapping[str, str] | None = None, **config: Any
    ) -> None:
        from cairn.server import Backend, ServerConfig, create_app, migrate

        self.db = db
        self.store = store
        migrate(db)
        env = env or {}
        with _environ(env):  # boto3 reads its credentials once, when the client is made
            self.backend = Backend.open(
                ServerConfig(
                    db=db,
                    store=store,
                    admin_key=ADMIN_KEY,
                    s3_endpoint=env.get("AWS_ENDPOINT_URL"),
                    **config,
                )
            )
        self.app = create_app(self.backend)
        self.transport = SyncASGITransport(self.app)
        self._admin = httpx.Client(
            transport=self.transport,
            base_url=self.url,
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )

    def create_key(self, user: str, project: str | None = None, role: str = "write") -> str:
        resp = self._admin.post(
            "/api/v1/keys", json={"user": user, "project": project, "role": role}
        )
        resp.raise_for_status()
        return str(resp.json()["key"])

    def service(self, key: str | None, cache_dir: str, **kw: Any) -> Any:
        """An ``HttpService`` (typed ``Any``: tests import cairn lazily) with key ``key``."""
        from cairn.service._http import HttpService

        return HttpService(self.url, key, cache_dir, transport=self.transport, **kw)

    def stop(self) -> None:
        self._admin.close()
        self.transport.shutdown()
        self.backend.close()


def use_in_process(
    app: InProcessServer, monkeypatch: Any, cache: str, wrap: Callable[[Any], None]
) -> None:
    """Point the SDK at ``app`` with a write key on every project and the download cache
    ``cache``; ``wrap(service)`` sees each ``HttpService`` the SDK makes (to count requests)."""
    import cairn.service
    from cairn.sdk import reset_services

    def service(_url: str, key: str | None, cache_dir: str, **kw: Any) -> Any:
        svc = app.service(key, cache_dir, **kw)
        wrap(svc)
        return svc

    reset_services()
    monkeypatch.setattr(cairn.service, "http_service", service)
    monkeypatch.setenv("CAIRN_BASE_URL", app.url)
    monkeypatch.setenv("CAIRN_API_KEY", app.create_key("tester", "*/*", "write"))
    monkeypatch.setenv("CAIRN_CACHE_DIR", cache)


def reset_database(db_url: str, keep: Sequence[str] = ("blobs", "alembic_version")) -> None:
    """Empty every catalog table (except those in ``keep``): a fresh store for the next test.

    ``db_url`` is a PostgreSQL URL or a SQLite file."""
    if not db_url.startswith(("postgres://", "postgresql://")):
        import sqlite3

        with contextlib.closing(sqlite3.connect(db_url, isolation_level=None)) as lite:
            names = [
                r[0]
                for r in lite.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    " AND name NOT LIKE 'sqlite_%'"
                )
                if r[0] not in keep
            ]
            lite.execute("PRAGMA foreign_keys = OFF")
            lite.execute("BEGIN IMMEDIATE")
            for name in names:
                lite.execute(f'DELETE FROM "{name}"')
            lite.execute("COMMIT")
        return
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
            if r[0] not in keep
        ]
        if not tables:
            return
        # DELETE, not TRUNCATE: a TRUNCATE gives each table and index a new file, ~100 files
        # made and removed per reset (143-188 ms against 41-51 ms on empty tables at load 17);
        # the tests' tables hold a few rows. Foreign keys are not checked while they are all
        # emptied (any order); a server we may not do that on (not a superuser) truncates.
        try:
            with conn.transaction():
                conn.execute("SET LOCAL session_replication_role = replica")
                conn.execute("; ".join(f'DELETE FROM "{t}"' for t in tables))
        except psycopg.errors.InsufficientPrivilege:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")


def image_tree(root: pathlib.Path, files: int, size: int, seed: int = 14) -> pathlib.Path:
    """``files`` image-shaped files of ``size`` random bytes under ``root``, in 8 directories
    (``c0/img0000.jpg``, ...): the data set of the server's transfer and memory tests."""
    rng = random.Random(seed)
    for i in range(files):
        path = root / f"c{i % 8}" / f"img{i:04}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
    return root


@contextlib.contextmanager
def writer_turn_held(db_path: str) -> Iterator[Callable[[threading.Thread], bool]]:
    """Hold the turn of ``db_path``'s writers (``cairn.storage.writer_turn``'s lock file) as
    another process would; yields ``queued(thread)``: whether ``thread`` came to wait in that
    queue (a blocked ``flock`` on the file in ``/proc/locks``) before it ended."""
    import fcntl

    lock = db_path + ".writers.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    inode = f":{os.fstat(fd).st_ino} "

    def queued(thread: threading.Thread) -> bool:
        deadline = time.monotonic() + 30  # a bound on a hang, not a timing
        while thread.is_alive() and time.monotonic() < deadline:
            with open("/proc/locks") as f:
                if any("->" in line and inode in line for line in f):
                    return True
            time.sleep(0.001)
        return False

    try:
        yield queued
    finally:
        os.close(fd)


_LOCK_HOLDER = """
import fcntl, os, signal, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_SH if sys.argv[2] == "shared" else fcntl.LOCK_EX)
sys.stdout.write("held\\n")
sys.stdout.flush()
if sys.argv[3] == "stop":
    os.kill(os.getpid(), signal.SIGSTOP)
else:
    sys.stdin.read()  # runs until its stdin is closed
"""


@contextlib.contextmanager
def turn_held_by_a_stopped_process(db_path: str) -> Iterator[int]:
    """Another process takes the turn of ``db_path``'s writers and stops (as Ctrl-Z or a
    debugger stops one); yields its pid. Killed at the end, which lets the turn go."""
    with lock_held_by_a_stopped_process(db_path + ".writers.lock") as pid:
        yield pid


@contextlib.contextmanager
def lock_held_by_a_stopped_process(path: str, *, shared: bool = False) -> Iterator[int]:
    """Another process takes the ``flock`` of the file at ``path`` (exclusive, or ``shared``)
    and stops; yields its pid. Killed at the end, which lets the lock go."""
    with _lock_held(path, "shared" if shared else "exclusive", "stop") as proc:
        yield proc.pid


@contextlib.contextmanager
def lock_held_by_a_running_process(path: str) -> Iterator[subprocess.Popen[bytes]]:
    """Another process takes the ``flock`` of the file at ``path`` (exclusive) and runs on (a
    gc deleting many blobs, say) until its stdin is closed; yields it. Killed at the end."""
    with _lock_held(path, "exclusive", "run") as proc:
        yield proc


@contextlib.contextmanager
def _lock_held(path: str, how: str, then: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _LOCK_HOLDER, path, how, then],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"held\n"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def raised_within(fn: Callable[[], object], seconds: float = 30) -> BaseException | None:
    """What ``fn`` raised (None: it returned), run in a thread; a wait with no bound (a hang)
    fails after ``seconds``, a bound on a hang, not a timing."""
    out: list[BaseException | None] = []

    def run() -> None:
        try:
            fn()
            out.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert out, f"still waiting after {seconds} s"
    return out[0]


def waits_its_turn(db_path: str, write: Callable[[], object]) -> bool:
    """Whether ``write`` (a write transaction on the SQLite file ``db_path``), run in a thread
    while another process has the turn of its writers, waits in their queue with SQLite's
    lock free meanwhile; it is then let go and finishes."""
    import sqlite3

    writer = threading.Thread(target=write)
    with writer_turn_held(db_path) as queued:
        writer.start()
        waited = queued(writer)
        other = sqlite3.connect(db_path, timeout=0, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # free: the writer has not begun
        other.execute("ROLLBACK")
        other.close()
    writer.join()
    return waited


_T = TypeVar("_T")


def run_coroutine(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run`` on a thread of its own: a loop another test left running in this thread
    (Playwright's, a session's; the order of tests varies between runs) must not matter."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
