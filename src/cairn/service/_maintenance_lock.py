"""The maintenance lock: commits hold it shared, gc's sweep holds it exclusive.

A commit checks that its blobs are present and commits under the lock held shared; gc recomputes
the live set and deletes under it held exclusive (see ``_maintenance.py`` and docs/design.md,
"Garbage collection"). It must hold across every process that writes a store: a file lock
(``flock``) beside an embedded store or a SQLite catalog, a PostgreSQL advisory lock for a
server's catalog, a lock of this process only where nothing else writes.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from cairn.errors import UnavailableError
from cairn.storage import BUSY_SECONDS, flock_holder, flock_holder_stopped, flock_within

if TYPE_CHECKING:
    from cairn.catalog import Catalog


class MaintenanceLock(Protocol):
    """Commits hold it shared from their blob check to their catalog commit; gc's sweep holds it
    exclusive. Must work across every process (and machine) that writes the store.

    ``sweeps`` counts the exclusive holds (each before its sweep deletes anything), or is None
    where the lock does not count them: a commit that read the same count before storing its
    blobs and again under the shared lock knows no sweep ran in between, so the blobs it stored
    meanwhile are all there (``_commit.commit``'s ``stored``; a sweep deletes only blobs older
    than its start anyway)."""

    def shared(self) -> AbstractContextManager[None]: ...

    def exclusive(self) -> AbstractContextManager[None]: ...

    def sweeps(self) -> int | None: ...


class ThreadMaintenanceLock:
    """A readers-writer lock for one process (stores no other process writes to)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._sweeps = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer and self._readers == 0)
            self._writer = True
            self._sweeps += 1
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()

    def sweeps(self) -> int | None:
        with self._cond:
            return self._sweeps


class FileMaintenanceLock:
    """``flock(2)`` on a file of the embedded store: every process on the machine agrees.

    Each hold opens the file anew: flock belongs to an open file, so threads of one process
    sharing a descriptor would release each other's locks. The file holds the count of
    exclusive holds (decimal; empty: 0), written by each exclusive holder as it starts.
    A hold waits while the holder runs (a gc deleting many blobs holds it for minutes), but
    at most ``busy_seconds`` more once the holder is stopped (Ctrl-Z, a debugger: Linux's
    ``/proc`` tells), then gets ``UnavailableError`` naming that process, nothing written: a
    ``cairn gc`` stopped while it sweeps kept every commit waiting, and a commit stopped under
    the lock kept gc waiting, with no bound. A holder that cannot be known (another pid
    namespace, no ``/proc``) is waited for as one that runs.
    """

    def __init__(self, path: str, busy_seconds: float = BUSY_SECONDS) -> None:
        self.path = path
        self.busy_seconds = busy_seconds

    @contextlib.contextmanager
    def _hold(self, exclusive: bool) -> Iterator[None]:
        opened = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        with flock_within(
            self.path,
            opened,
            exclusive=exclusive,
            timeout=self.busy_seconds,
            refused=lambda: self._refused(exclusive),
            required=True,
            keep_waiting=lambda: not flock_holder_stopped(self.path),
        ) as fd:
            held = os.pread(fd, 32, 0)
            if exclusive:
                count = _count(held)
                text = b"%d" % (0 if count is None else count + 1)
                os.pwrite(fd, text.ljust(20), 0)  # one write of the same length: never torn
            elif not held:
                # The count's room, taken by the first commit: a sweep on a full disk then
                # writes in place (each writer of "0" here writes the same bytes).
                with contextlib.suppress(OSError):
                    os.pwrite(fd, b"0".ljust(20), 0)
            yield

    def _refused(self, exclusive: bool) -> UnavailableError:
        doing = "a commit (or another gc)" if exclusive else "gc deleting unused blobs"
        then = (
            "run gc again (nothing was deleted)" if exclusive else "try again (nothing was written)"
        )
        err = UnavailableError(
            f"the store's maintenance lock ({self.path}) is held by {flock_holder(self.path)},"
            f" {doing}, which is stopped (Ctrl-Z, a debugger; waited {self.busy_seconds:g} s):"
            f" let it go on or end it, then {then}"
        )
        err.public = "the server's store is busy (nothing was written); try again later"
        return err

    def sweeps(self) -> int | None:
        try:
            with open(self.path, "rb") as f:
                return _count(f.read(32))
        except FileNotFoundError:
            return 0
        except OSError:
            return None

    def shared(self) -> AbstractContextManager[None]:
        return self._hold(False)

    def exclusive(self) -> AbstractContextManager[None]:
        return self._hold(True)


def _count(text: bytes) -> int | None:
    """The count a lock file holds (empty: 0), or None when it holds something else."""
    text = text.strip()
    return int(text) if text.isdigit() else (0 if not text else None)


_ADVISORY_KEY = 0x636169726E  # "cairn": the key of the maintenance lock among advisory locks


class AdvisoryMaintenanceLock:
    """A PostgreSQL advisory lock: every server process (on every machine) and every
    ``cairn gc`` run against the same catalog agree. Each hold uses its own connection, so the
    lock ends with it even if the process dies."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def _connect(self, how: str) -> Any:
        """A connection holding the lock; a catalog outage is waited out as a transaction's is."""
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        from cairn.catalog import OUTAGE_SECONDS

        started = time.monotonic()
        while True:
            conn = None
            try:
                conn = self.catalog.engine.connect()
                conn.execute(text(f"SELECT {how}(:k)"), {"k": _ADVISORY_KEY})
                conn.commit()
                return conn
            except SQLAlchemyError as exc:
                if conn is not None:
                    conn.invalidate()
                    conn.close()
                if time.monotonic() - started > OUTAGE_SECONDS:
                    raise UnavailableError(
                        f"the catalog ({self.catalog.display}) cannot be reached to take the"
                        f" maintenance lock ({type(exc).__name__}); retry in a moment"
                    ) from None
                time.sleep(0.2)

    @contextlib.contextmanager
    def _hold(self, exclusive: bool) -> Iterator[None]:
        from sqlalchemy import text

        conn = self._connect("pg_advisory_lock" if exclusive else "pg_advisory_lock_shared")
        try:
            yield
        finally:
            undo = "pg_advisory_unlock" if exclusive else "pg_advisory_unlock_shared"
            try:
                conn.execute(text(f"SELECT {undo}(:k)"), {"k": _ADVISORY_KEY})
                conn.commit()
            except Exception:  # noqa: BLE001 - a lost connection released the lock anyway
                conn.invalidate()
            conn.close()

    def shared(self) -> AbstractContextManager[None]:
        return self._hold(False)

    def exclusive(self) -> AbstractContextManager[None]:
        return self._hold(True)

    def sweeps(self) -> int | None:
        return None  # not counted: a server checks every blob a commit names


def maintenance_lock_for_catalog(catalog: Catalog) -> MaintenanceLock:
    """The lock every process writing through ``catalog`` shares: an advisory lock on
    PostgreSQL, a file lock beside a SQLite catalog."""
    if catalog.dialect == "postgresql":
        return AdvisoryMaintenanceLock(catalog)
    db = catalog.url.split("///", 1)[-1]
    return FileMaintenanceLock(f"{db}.maintenance.lock")


def maintenance_lock_for(root: str) -> MaintenanceLock:
    """The lock of the embedded store at ``root`` (a process-local one where flock is missing)."""
    try:
        import fcntl  # noqa: F401
    except ImportError:  # pragma: no cover - Windows
        return ThreadMaintenanceLock()
    return FileMaintenanceLock(os.path.join(root, "maintenance.lock"))
