"""The catalog: metadata of projects, runs, collections, versions, aliases and lineage.

One ``Catalog`` wraps one SQLAlchemy engine (SQLite for the embedded store, PostgreSQL for a
server). Work happens in transactions: ``catalog.write(fn)`` runs ``fn(tx)`` in a write
transaction and retries it when a concurrent writer got in the way; ``catalog.read(fn)`` does the
same for reads. ``tx`` (``_tx.py``) gives the repositories, one per concept, that share the
transaction's connection: ``tx.versions``, ``tx.aliases``, ``tx.lineage``, ... Version numbers
are handed out by bumping ``collections.next_index`` inside the committing transaction, after
locking the collection row (``tx.collections.lock``), so they are dense and unique across
processes and machines.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.pool import QueuePool

from cairn.catalog._tx import Tx
from cairn.errors import CommError, ConflictError, UnavailableError

T = TypeVar("T")
_RETRIES = 12


def _sqlstate(exc: DBAPIError) -> str | None:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return str(code) if code else None


def _is_transient(exc: DBAPIError) -> bool:
    """Lock timeouts, serialization failures and deadlocks: the transaction may simply be retried."""
    if _is_outage(exc):
        return True
    if _sqlstate(exc) in ("40001", "40P01", "55P03"):
        return True
    text = str(exc.orig).lower()
    return "database is locked" in text or "database is busy" in text


def _is_outage(exc: DBAPIError) -> bool:
    """The catalog's server is gone for now (restart, failover, not up yet)."""
    if exc.connection_invalidated:
        return True  # the server closed the connection: a new one may do
    code = _sqlstate(exc) or ""
    if code.startswith("08") or code in ("57P01", "57P02", "57P03"):
        return True  # connection exceptions; admin/crash shutdown; cannot connect now
    text = str(exc.orig).lower()
    return any(
        t in text
        for t in (
            "connection refused",
            "could not connect",
            "connection failed",  # psycopg, before any SQLSTATE exists
            "server closed the connection",
            "the database system is shutting down",
            "the database system is starting up",
            "terminating connection",
        )
    )


def _is_unique_violation(exc: IntegrityError) -> bool:
    """Two writers created the same row: a genuine race, which a retry resolves."""
    if _sqlstate(exc) == "23505":
        return True
    text = str(exc.orig).lower()
    return "unique constraint failed" in text or "primary key must be unique" in text


OUTAGE_SECONDS = 8.0  # how long one transaction waits out a catalog outage before a 503


_HOST_PORT = re.compile(r'(?:at|host) "[^"]*"(?: \([^)]*\))?(?:, port \d+)?|port \d+')
_SOCKET = re.compile(r'socket "[^"]*"')
_USER = re.compile(r'(user|role|database) "[^"]*"')


def scrub(text: str, url: str) -> str:
    """``text`` (a driver's message) without the catalog's host, port, user name or password."""
    try:
        parts = make_url(url)
        secrets = [parts.password, parts.username, parts.host, parts.port]
    except ArgumentError:
        secrets = []
    text = _HOST_PORT.sub("<catalog host>", text)
    text = _SOCKET.sub("<catalog socket>", text)
    text = _USER.sub(lambda m: f"{m.group(1)} <hidden>", text)
    for secret in secrets:
        if secret is not None and len(str(secret)) >= 2:
            text = text.replace(str(secret), "<hidden>")
    return " ".join(text.split())


class Catalog:
    """Metadata in SQL. ``url`` is any SQLAlchemy URL (``sqlite:///...``, ``postgresql+psycopg://...``)."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._pid = 0
        self.dialect = url.split(":", 1)[0].split("+", 1)[0]
        from cairn.catalog._migrate import ensure_schema

        ensure_schema(self, create=create)

    @property
    def display(self) -> str:
        """The catalog as error messages name it: a SQLite file's path, or a PostgreSQL
        database's name (never its host, port or credentials)."""
        try:
            parts = make_url(self.url)
        except ArgumentError:
            return self.dialect
        if self.dialect == "sqlite":
            return str(parts.database or "(memory)")
        return f"{self.dialect} database {parts.database or ''!s}".strip()

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None or self._pid != os.getpid():
            if self._engine is not None:
                self._engine.dispose(close=False)  # inherited over fork(): not ours to close
            self._engine = self._make_engine()
            self._pid = os.getpid()
        return self._engine

    def _make_engine(self) -> Engine:
        if self.dialect == "sqlite":
            # Connections are pooled (opening one and setting its pragmas costs more than most
            # transactions); the engine is rebuilt in a forked child, so none crosses fork().
            engine = create_engine(
                self.url,
                poolclass=QueuePool,
                pool_size=4,
                max_overflow=8,
                connect_args={"timeout": 60, "check_same_thread": False},
            )

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=FULL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()

            @event.listens_for(engine, "begin")
            def _on_begin(conn: Connection) -> None:
                # Writers take the lock up front, so two writers never deadlock upgrading a read
                # lock; readers use a plain (deferred) transaction and never block in WAL mode.
                write = conn.get_execution_options().get("cairn_write", False)
                conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

            return engine
        # No pre-ping (a round trip per transaction): a connection the server closed fails its
        # first statement, the pool is invalidated, and _run retries the transaction.
        return create_engine(self.url, pool_size=8, max_overflow=16, pool_use_lifo=True)

    def dispose(self) -> None:
        if self._engine is not None and self._pid == os.getpid():
            self._engine.dispose()
        self._engine = None

    def _run(self, fn: Callable[[Tx], T], write: bool, single: bool = False) -> T:
        delay = 0.01
        started = time.monotonic()
        for attempt in range(_RETRIES):
            try:
                with self.engine.connect() as conn:
                    conn = conn.execution_options(cairn_write=write)
                    if single and self.dialect == "postgresql":
                        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                        return fn(Tx(conn, self.dialect))
                    with conn.begin():
                        return fn(Tx(conn, self.dialect))
            except IntegrityError as exc:
                if not _is_unique_violation(exc):
                    # Not a race: a row it refers to is gone, or a check failed. Say so at once.
                    raise ConflictError(
                        f"the catalog refused the change: {scrub(str(exc.orig), self.url)}"
                    ) from None
                # A concurrent writer created the same row first; the retry will see it.
                if attempt == _RETRIES - 1:
                    raise ConflictError(
                        f"catalog conflict, retries exhausted: {scrub(str(exc.orig), self.url)}"
                    ) from None
            except (OperationalError, DBAPIError) as exc:
                if _is_outage(exc):
                    if time.monotonic() - started > OUTAGE_SECONDS:
                        raise UnavailableError(
                            f"the catalog ({self.display}) cannot be reached:"
                            f" {scrub(str(exc.orig), self.url)}; retry in a moment"
                        ) from None
                    time.sleep(min(0.5, 0.05 * 2**attempt))
                    continue
                if not _is_transient(exc) or attempt == _RETRIES - 1:
                    raise CommError(
                        f"catalog error ({self.display}): {scrub(str(exc.orig), self.url)}"
                    ) from None
            except SQLAlchemyError as exc:
                raise CommError(
                    f"catalog error ({self.display}): {scrub(str(exc), self.url)}"
                ) from None
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 1.0)
        raise UnavailableError(f"the catalog ({self.display}) cannot be reached; retry later")

    def write(self, fn: Callable[[Tx], T]) -> T:
        return self._run(fn, write=True)

    def read(self, fn: Callable[[Tx], T]) -> T:
        return self._run(fn, write=False)

    def read_single(self, fn: Callable[[Tx], T]) -> T:
        """``read`` for an ``fn`` that runs ONE statement: one statement sees one snapshot by
        itself, so on PostgreSQL it runs outside a transaction (no BEGIN and COMMIT: one round
        trip instead of three, what a server's ``resolve`` costs most). An ``fn`` that runs more
        than one would see each statement's own snapshot: use ``read``."""
        return self._run(fn, write=False, single=True)
