"""The embedded store's catalog: transactions on a plain ``sqlite3`` connection first, the full
``Catalog`` (SQLAlchemy) from the first one that needs it.

Re-logging an unchanged directory from a new process starts a run, finds the identical version
and labels it, and finishes the run: a handful of rows, but importing SQLAlchemy and building
its engine cost more than all the rest (issue 13, docs/design.md "Performance"). A catalog
whose schema is current (one cheap check, ``open_current``) is opened as an
``EmbeddedCatalog``: ``write(fn)`` and ``read(fn)`` hand ``fn`` a ``QuickTx`` (the repository
methods such a re-log uses, ``_quick_tx.py``), and when ``fn`` needs anything else
(``NeedsCatalog``) or SQLite refuses, the transaction is rolled back and ``fn`` runs again on
the full ``Catalog``, opened then and used for every later transaction of this process: as
``Catalog`` itself retries a transaction a concurrent writer got in the way of. Functions given
to a catalog may run more than once; the result is that of the one that committed.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from cairn.catalog._quick import open_current
from cairn.catalog._quick_tx import NeedsCatalog, QuickTx
from cairn.storage import BUSY_SECONDS, writer_turn

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from cairn.catalog._catalog import Catalog
    from cairn.catalog._tx import Tx

T = TypeVar("T")


def open_embedded_catalog(path: str) -> Catalog:
    """The catalog of an embedded store, the SQLite file at ``path``: an ``EmbeddedCatalog``
    when its schema is current, else a ``Catalog`` (which creates, upgrades or refuses it)."""
    conn = open_current(path)
    if conn is None:
        from cairn.catalog._catalog import Catalog

        return Catalog("sqlite:///" + path)
    # The same interface as Catalog (url, dialect, display, engine, dispose, read, write).
    return cast("Catalog", EmbeddedCatalog(path, conn))


class EmbeddedCatalog:
    """A current SQLite catalog: ``QuickTx`` first, the full ``Catalog`` when needed."""

    dialect = "sqlite"

    def __init__(self, path: str, conn: sqlite3.Connection) -> None:
        self.path = path
        self.url = "sqlite:///" + path
        # As Catalog's connections (its engine's "connect" event): the same durability and
        # checks for every write, whichever connection makes it.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        self._quick: sqlite3.Connection | None = conn
        self._pid = os.getpid()
        self._full: Catalog | None = None
        self._lock = threading.RLock()
        self.busy_seconds = BUSY_SECONDS  # a write's wait for its turn (SQLite's is that of _quick)

    @property
    def display(self) -> str:
        return self.path

    @property
    def full(self) -> Catalog:
        """The full catalog, opened on first use (from then on every transaction uses it)."""
        with self._lock:
            if self._full is None:
                from cairn.catalog._catalog import Catalog

                self._full = Catalog(self.url)
                self._close_quick()
            return self._full

    @property
    def quick(self) -> bool:
        """Whether transactions still try the quick path (the full catalog is not open)."""
        return self._full is None and self._quick is not None

    @property
    def engine(self) -> Engine:
        return self.full.engine

    def dispose(self) -> None:
        with self._lock:
            self._close_quick()
            if self._full is not None:
                self._full.dispose()

    def _close_quick(self) -> None:
        if self._quick is not None and self._pid == os.getpid():  # not one inherited over fork
            self._quick.close()
        self._quick = None

    def _run(self, fn: Callable[[Tx], T], write: bool) -> T:
        with self._lock:
            conn = self._quick if self._full is None and self._pid == os.getpid() else None
            if conn is not None and not conn.in_transaction:  # not nested in another one
                # A write waits for the catalog's other writers in a queue (``writer_turn``),
                # not by SQLite's polling; one that waited too long is refused (not tried again
                # through the full catalog, which would wait on SQLite's lock the old way).
                with (
                    writer_turn(self.path, self.busy_seconds) if write else contextlib.nullcontext()
                ):
                    try:
                        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                        result = fn(cast("Tx", QuickTx(conn)))
                        conn.execute("COMMIT")
                        return result
                    except (NeedsCatalog, sqlite3.Error):
                        pass  # rolled back below; the full catalog runs fn again
                    finally:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
        return self.full.write(fn) if write else self.full.read(fn)

    def write(self, fn: Callable[[Tx], T]) -> T:
        return self._run(fn, write=True)

    def read(self, fn: Callable[[Tx], T]) -> T:
        return self._run(fn, write=False)

    def read_single(self, fn: Callable[[Tx], T]) -> T:
        """``Catalog.read_single`` (one statement): on SQLite, ``read``."""
        return self._run(fn, write=False)

    def __getattr__(self, name: str) -> Any:
        # Anything else Catalog has (none is used today) comes from the full catalog.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.full, name)
