"""The local store's small blobs: pack files indexed by ``small.sqlite``.

``packs/NNNNNNNN.pack`` holds blobs under the store's ``small_limit`` back to back (no header, no
padding), so a small blob costs its size on disk; ``small.sqlite`` indexes them (table
``packed``: digest -> pack, offset, size, stored_at; table ``pack``: each pack's committed end
and live bytes). Writers take turns (``writer_turn``: a queue, then SQLite's write lock). A writer
appends at the pack's committed end, flushes the pack, then commits the index rows: a writer
killed in between leaves bytes past the committed end that no row refers to, and the next writer
writes over them. A batch of ``OWN_PACK`` bytes or more is written and flushed into a file of its
own before the turn, which then makes it a new pack (``_index_own``). gc deletes rows, then
rewrites a pack whose live bytes fell under half (``compact``) and removes the old one. Stores of
the first format (blob bytes in the ``blob`` table of ``small.sqlite``) are moved into packs
when opened (``upgrade``); until then those blobs are read in place.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence

from cairn.core import digest_from_raw, digest_raw
from cairn.errors import CommError, UnavailableError
from cairn.storage._local_direct import DirectWriter
from cairn.storage._local_io import (
    BUSY_SECONDS,
    O_CLOEXEC,
    disk_full,
    fsync_dir,
    pread_all,
    pread_spans,
    preallocate,
    pwritev_all,
    store_error,
    writer_turn,
)

BATCH = 500  # SQLite host parameters per statement, well under its limit
PACK_LIMIT = 64 << 20  # a pack takes no more appends once it holds this many bytes
# A batch of new blobs this large is written into a pack of its own before the writer's turn
# (only the index rows and the file's name wait for it); smaller ones append under the turn.
OWN_PACK = 4 << 20
_IOV = 1024  # buffers per write call when appending to a pack (Linux's IOV_MAX)

_SCHEMA = (
    # Each pack's committed end (bytes past it are a killed writer's, and written over) and the
    # bytes of it that live blobs use (gc rewrites a pack when they fall under half).
    "CREATE TABLE IF NOT EXISTS pack (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " size INTEGER NOT NULL, live INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS packed (digest BLOB PRIMARY KEY, pack INTEGER NOT NULL,"
    " offset INTEGER NOT NULL, size INTEGER NOT NULL, stored_at REAL NOT NULL) WITHOUT ROWID",
)


def rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the original error is the one to report


class Packs:
    """Pack files under ``root/packs`` and their index ``root/small.sqlite``. Digests are raw
    (32 bytes, as the index keeps them) except in ``read_many``."""

    def __init__(self, root: str, *, durable: bool) -> None:
        self.root = root
        self._durable = durable
        self._db_path = os.path.join(root, "small.sqlite")
        self.packs_dir = os.path.join(root, "packs")  # created with the first pack
        self.lock = threading.RLock()  # one user of the connection at a time (gc too)
        self.busy_seconds = BUSY_SECONDS  # a writer's wait for its turn, and SQLite's for its lock
        self._conn: sqlite3.Connection | None = None
        self._conn_pid = 0
        self._direct = DirectWriter()
        self.legacy = False  # small.sqlite still holds first-format blobs (table ``blob``)

    def db(self) -> sqlite3.Connection:
        # A connection must not cross fork(); open a fresh one in a child process.
        if self._conn is None or self._conn_pid != os.getpid():
            conn = sqlite3.connect(
                self._db_path, self.busy_seconds, isolation_level=None, check_same_thread=False
            )
            try:
                # The index only (the bytes are in packs): small pages waste least.
                conn.execute("PRAGMA page_size=4096")
                # Pages freed by gc go back to the file system (``incremental_vacuum`` after each
                # delete). Set when the file is created; older stores keep their mode. (Set on an
                # existing file, it rewrites the header: a transaction and four fsyncs per open.)
                if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
                    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
                # A rollback journal, not WAL: WAL would write every index page twice (log, then
                # checkpoint). Readers wait out a commit.
                conn.execute("PRAGMA journal_mode=TRUNCATE")
                conn.execute(f"PRAGMA synchronous={'FULL' if self._durable else 'OFF'}")
                for statement in _SCHEMA:
                    conn.execute(statement)
                legacy = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'blob'"
                ).fetchone()
            except sqlite3.Error as exc:
                conn.close()
                raise CommError(f"cannot open the blob index {self._db_path}: {exc}") from None
            self._conn, self._conn_pid = conn, os.getpid()
            self.legacy = legacy is not None
            if self.legacy:
                try:
                    self.upgrade()
                except (sqlite3.Error, OSError, UnavailableError):  # busy: the turn not had
                    pass  # a store we cannot write (yet): first-format blobs are read in place
        return self._conn

    def pack_path(self, pack: int) -> str:
        return os.path.join(self.packs_dir, f"{pack:08d}.pack")

    def turn(self) -> contextlib.AbstractContextManager[None]:
        """This process's turn among the index's writers (``writer_turn``), around each write
        transaction."""
        return writer_turn(self._db_path, self.busy_seconds)

    # -- writes --------------------------------------------------------------------------------

    def put(self, items: Sequence[tuple[bytes, bytes, float]]) -> None:
        """Append the blobs not yet stored to a pack and index them, in one transaction; those
        already stored get their ``stored_at`` refreshed (gc's grace period counts from the last
        time a writer relied on the blob)."""
        own = None
        if sum(len(data) for _, data, _ in items) >= OWN_PACK:
            own = self._write_own(items)
        try:
            with self.lock:
                db = self.db()  # outside the turn: opening may move a first-format store
                with self.turn():
                    if own is None or self.legacy or not self._index_own(db, items, own):
                        self._put(db, items)
        finally:
            if own is not None and os.path.exists(own):
                os.unlink(own)  # not installed (a known blob in the batch, or an error)

    def _write_own(self, items: Sequence[tuple[bytes, bytes, float]]) -> str:
        """Write the blobs back to back into a new file under ``tmp/`` and flush it, before
        the writer's turn: eight processes storing their blobs at once each held the turn
        through its write and flush, one after the other (design.md "Eight upserting
        processes"). Returns its path (``_index_own`` makes it a pack; a killed writer leaves
        a partial file, which ``remove_stale_temp`` deletes)."""
        tmp = os.path.join(self.root, "tmp")
        os.makedirs(tmp, exist_ok=True)
        path = os.path.join(tmp, f"{os.urandom(16).hex()}.partial")
        datas = [data for _, data, _ in items]
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | O_CLOEXEC, 0o644)
            try:
                self._write_flushed(fd, 0, datas)
            finally:
                os.close(fd)
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            if disk_full(exc):
                raise store_error(self.root, "could not store blobs", exc) from None
            raise
        return path

    def _index_own(
        self, db: sqlite3.Connection, items: Sequence[tuple[bytes, bytes, float]], own: str
    ) -> bool:
        """In one transaction (the writer's turn held): a new pack row, the blobs' index rows
        pointing into it, and the file ``own`` renamed to that pack's name (its directory
        flushed before the commit). False, with nothing changed, when a blob of the batch is
        indexed already (or comes twice): then ``_put`` appends the new ones as usual."""
        with self._storing(db):
            db.execute("BEGIN IMMEDIATE")
            total = sum(len(data) for _, data, _ in items)
            cur = db.execute("INSERT INTO pack (size, live) VALUES (?, ?)", (total, total))
            pack = int(cur.lastrowid or 0)
            rows: list[tuple[bytes, int, int, int, float]] = []
            end = 0
            for raw, data, stored_at in items:
                rows.append((raw, pack, end, len(data), stored_at))
                end += len(data)
            changes = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO packed (digest, pack, offset, size, stored_at)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            if db.total_changes - changes != len(rows):
                db.execute("ROLLBACK")
                return False
            fresh = not os.path.isdir(self.packs_dir)
            os.makedirs(self.packs_dir, exist_ok=True)
            os.replace(own, self.pack_path(pack))
            try:
                if self._durable:
                    fsync_dir(self.packs_dir)
                    if fresh:
                        fsync_dir(self.root)
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(self.pack_path(pack))  # no row will name it
                raise
            return True

    @contextlib.contextmanager
    def _storing(self, db: sqlite3.Connection) -> Iterator[None]:
        """A transaction storing blobs: on an error it is rolled back, and SQLite's errors and a
        full disk are reported as the store's (``store_error``)."""
        try:
            yield
        except sqlite3.Error as exc:
            rollback(db)
            raise store_error(self.root, "could not store blobs", exc) from None
        except OSError as exc:
            rollback(db)
            if disk_full(exc):
                raise store_error(self.root, "could not store blobs", exc) from None
            raise

    def _put(self, db: sqlite3.Connection, items: Sequence[tuple[bytes, bytes, float]]) -> None:
        with self._storing(db):
            db.execute("BEGIN IMMEDIATE")
            # Usually every blob is new (writers ask which are missing first): then the index
            # rows go in as one statement, and only a batch with a known blob is sorted out.
            if not self.legacy and self.append(db, items, only_new=True):
                db.execute("COMMIT")
                return
            present = self._present(db, [raw for raw, _, _ in items])
            for table in ("packed", "blob") if self.legacy else ("packed",):
                db.executemany(
                    f"UPDATE {table} SET stored_at = ? WHERE digest = ?",
                    [(at, raw) for raw, _, at in items if raw in present],
                )
            new: dict[bytes, tuple[bytes, bytes, float]] = {}
            for item in items:
                if item[0] not in present:
                    new.setdefault(item[0], item)
            if new:
                self.append(db, list(new.values()))
            db.execute("COMMIT")

    def present(self, raws: Sequence[bytes]) -> set[bytes]:
        """Those of ``raws`` in a pack (or, until moved, in the first format's table)."""
        with self.lock:
            return self._present(self.db(), raws)

    def _present(self, db: sqlite3.Connection, raws: Sequence[bytes]) -> set[bytes]:
        found: set[bytes] = set()
        tables = ("packed", "blob") if self.legacy else ("packed",)
        # In key order, each query's lookups walk neighbouring pages of the index (measured:
        # 100,000 random digests looked up in 0.29 s of CPU sorted, 0.42 s unsorted).
        raws = sorted(raws)
        for start in range(0, len(raws), BATCH):
            chunk = raws[start : start + BATCH]
            marks = ",".join("?" * len(chunk))
            for table in tables:
                rows = db.execute(f"SELECT digest FROM {table} WHERE digest IN ({marks})", chunk)
                found.update(bytes(r[0]) for r in rows)
        return found

    def append(
        self,
        db: sqlite3.Connection,
        items: Sequence[tuple[bytes, bytes, float]],
        avoid: int = 0,
        only_new: bool = False,
    ) -> bool:
        """Write ``(raw digest, data, stored_at)`` at the end of the last pack (a new one when it
        is full, or is ``avoid``), flush it, and (re)point the index rows at the new copies.
        With ``only_new``, do nothing and return False if any digest is indexed already (or
        comes twice). The caller holds the write lock (``BEGIN IMMEDIATE``) and commits."""
        db.execute("SAVEPOINT append")
        last = db.execute("SELECT id, size FROM pack ORDER BY id DESC LIMIT 1").fetchone()
        fresh = last is None or last[1] >= PACK_LIMIT or last[0] == avoid
        if fresh:
            pack = int(db.execute("INSERT INTO pack (size, live) VALUES (0, 0)").lastrowid or 0)
            end = 0
        else:
            pack, end = int(last[0]), int(last[1])
        rows: list[tuple[bytes, int, int, int, float]] = []
        start = end
        for raw, data, stored_at in items:
            rows.append((raw, pack, end, len(data), stored_at))
            end += len(data)
        # The rows go in first (no one sees them before the commit, which comes after the flush).
        changes = db.total_changes
        verb = "INSERT OR IGNORE" if only_new else "INSERT OR REPLACE"
        db.executemany(
            f"{verb} INTO packed (digest, pack, offset, size, stored_at) VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        if only_new and db.total_changes - changes != len(rows):
            db.execute("ROLLBACK TO append")
            db.execute("RELEASE append")
            return False
        db.execute(
            "UPDATE pack SET size = ?, live = live + ? WHERE id = ?", (end, end - start, pack)
        )
        db.execute("RELEASE append")
        if fresh:
            os.makedirs(self.packs_dir, exist_ok=True)
        fd = os.open(self.pack_path(pack), os.O_RDWR | os.O_CREAT | O_CLOEXEC, 0o644)
        try:
            self._write_flushed(fd, start, [data for _, data, _ in items])
        finally:
            os.close(fd)
        if fresh and self._durable:  # a new pack file (every PACK_LIMIT bytes): its name too
            fsync_dir(self.packs_dir)
            fsync_dir(self.root)
        return True

    def _write_flushed(self, fd: int, start: int, datas: Sequence[bytes]) -> None:
        """Write ``datas`` back to back from ``start`` of the pack file ``fd`` and flush it."""
        # Reserving the space first lets the file system lay the batch out in one go.
        preallocate(fd, start + sum(len(b) for b in datas), start)
        # Past the page cache when the bytes are flushed anyway (``_local_direct.py``).
        if not (self._durable and self._direct.write(fd, start, datas)):
            for i in range(0, len(datas), _IOV):
                pwritev_all(fd, datas[i : i + _IOV], start)
                start += sum(len(b) for b in datas[i : i + _IOV])
        if self._durable:
            os.fsync(fd)

    # -- reads ---------------------------------------------------------------------------------

    def read(self, raw: bytes, start: int, length: int | None) -> bytes | None:
        """Bytes ``[start, start + length)`` (all with ``length=None``) of a small blob, read in
        place from its pack (or the first format's row), or None if there is no such small blob.
        A pack that gc rewrote between the lookup and the read is looked up again."""
        for _ in range(5):
            with self.lock:
                db = self.db()
                row = db.execute(
                    "SELECT pack, offset, size FROM packed WHERE digest = ?", (raw,)
                ).fetchone()
                if row is None:
                    return self._read_legacy(db, raw, start, length)
            pack, offset, size = (int(v) for v in row)
            begin = min(start, size)
            count = size - begin if length is None else max(0, min(length, size - begin))
            try:
                fd = os.open(self.pack_path(pack), os.O_RDONLY | O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                return pread_all(fd, count, offset + begin)
            finally:
                os.close(fd)
        return None  # indexed, but its pack is gone: a missing blob (``cairn verify`` says so)

    def _read_legacy(
        self, db: sqlite3.Connection, raw: bytes, start: int, length: int | None
    ) -> bytes | None:
        if not self.legacy:
            return None
        try:
            if length is None:
                row = db.execute("SELECT data FROM blob WHERE digest = ?", (raw,)).fetchone()
            else:
                row = db.execute(
                    "SELECT substr(data, ?, ?) FROM blob WHERE digest = ?",
                    (start + 1, length, raw),
                ).fetchone()
        except sqlite3.OperationalError:
            self.legacy = False  # moved into packs by another process meanwhile
            return self.read(raw, start, length)
        return None if row is None else bytes(row[0])

    def read_many(self, chunk: Sequence[str]) -> Iterator[bytes | None]:
        """The bytes (unverified) of each blob of ``chunk`` (at most ``BATCH`` digests, not raw),
        looked up in one query, each pack opened once and its blobs read a span at a time; None
        for a blob not in a pack (large, first-format, absent, or its pack rewritten by gc)."""
        raws = [digest_raw(d) for d in chunk]
        with self.lock:
            rows = (
                self.db()
                .execute(
                    "SELECT digest, pack, offset, size FROM packed"
                    f" WHERE digest IN ({','.join('?' * len(raws))})",
                    raws,
                )
                .fetchall()
            )
        where = {bytes(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in rows}
        by_pack: dict[int, list[tuple[int, int, int]]] = {}  # pack -> (index, offset, size)
        for i, raw in enumerate(raws):
            spot = where.get(raw)
            if spot is not None:
                by_pack.setdefault(spot[0], []).append((i, spot[1], spot[2]))
        found: list[bytes | None] = [None] * len(raws)
        for pack, spots in by_pack.items():
            try:
                fd = os.open(self.pack_path(pack), os.O_RDONLY | O_CLOEXEC)
            except FileNotFoundError:
                continue  # rewritten by gc meanwhile: looked up again by the caller
            try:
                datas = pread_spans(fd, [(offset, size) for _, offset, size in spots])
            finally:
                os.close(fd)
            for (i, _, _), data in zip(spots, datas, strict=True):
                found[i] = data
        return iter(found)

    def size(self, raw: bytes) -> int | None:
        with self.lock:
            db = self.db()
            row = db.execute("SELECT size FROM packed WHERE digest = ?", (raw,)).fetchone()
            if row is None and self.legacy:
                row = db.execute("SELECT size FROM blob WHERE digest = ?", (raw,)).fetchone()
        return None if row is None else int(row[0])

    def entries(self) -> Iterator[tuple[str, int, float]]:
        """(digest, size, stored_at) of every packed blob."""
        with self.lock:
            db = self.db()
            rows = db.execute("SELECT digest, size, stored_at FROM packed").fetchall()
            if self.legacy:
                rows += db.execute("SELECT digest, size, stored_at FROM blob").fetchall()
        for raw, size, stored_at in rows:
            yield digest_from_raw(bytes(raw)), int(size), float(stored_at)

    # -- removal and compaction (``_local_pack_gc.py``) ---------------------------------------

    def delete(self, raws: Sequence[bytes]) -> int:
        """Remove the index rows of these blobs (their bytes stay in their packs until
        ``compact``); returns how many there were."""
        from cairn.storage._local_pack_gc import delete

        return delete(self, raws)

    def compact(self) -> int:
        """Rewrite packs mostly of deleted blobs, remove pack files no row names; returns the
        bytes given back (``_local_pack_gc.compact``)."""
        from cairn.storage._local_pack_gc import compact

        return compact(self)

    # -- the first format (``_local_pack_upgrade.py``) -----------------------------------------

    def upgrade(self) -> int:
        """Move the blobs of a first-format store into packs; returns how many were moved
        (``_local_pack_upgrade.upgrade``). Runs when the store is opened."""
        from cairn.storage._local_pack_upgrade import upgrade

        return upgrade(self)

    def close(self) -> None:
        with self.lock:
            if self._conn is not None and self._conn_pid == os.getpid():
                self._conn.close()
            self._conn = None
