"""Content-addressed blobs on local disk.

Layout under ``root`` (see docs/design.md, "Blobs"):

* ``sha256/ab/cdef...``: one read-only file per blob of ``small_limit`` bytes or more, written to
  ``tmp/`` first, flushed to disk, then renamed into place;
* ``packs/NNNNNNNN.pack``: blobs under ``small_limit`` bytes, back to back (no header, no
  padding), so a small blob costs its size on disk; ``small.sqlite`` indexes them (table
  ``packed``: digest -> pack, offset, size, stored_at; table ``pack``: each pack's committed end
  and live bytes). Creating a file costs more than writing 4 KiB on most file systems, and a
  4 KiB row spills over SQLite's pages; appending to a pack costs one write and one flush for
  thousands of blobs, and exactly their bytes.

A writer appends under SQLite's write lock at the pack's committed end, flushes the pack, then
commits the index rows: a writer killed in between leaves bytes past the committed end that no
row refers to, and the next writer writes over them. gc deletes rows, then rewrites a pack whose
live bytes fell under half (``compact``) and removes the old one. Stores of the first format
(blob bytes in the ``blob`` table of ``small.sqlite``) are moved into packs when opened
(``upgrade``). Several processes may read and write the same store at once: files are renamed
atomically and SQLite serialises writers (a rollback journal, ``TRUNCATE``, not WAL: see ``_db``;
a writer waits up to a minute for the lock).
"""

from __future__ import annotations

import errno
import fcntl
import io
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import BinaryIO

from cairn.core import (
    BLOB_ROOT,
    blob_path_parts,
    digest_bytes,
    digest_from_hasher,
    digest_from_raw,
    digest_in_folder,
    digest_raw,
    new_hasher,
    transfer,
)
from cairn.errors import BlobNotFoundError, CommError, DigestMismatchError
from cairn.storage._base import BlobInfo, check_range, put_verified_file
from cairn.storage._hashing import hash_stream

SMALL_LIMIT = 128 * 1024
CHUNK = 1 << 20
_BATCH = 500  # SQLite host parameters per statement, well under its limit
PACK_LIMIT = 64 << 20  # a pack takes no more appends once it holds this many bytes
_IOV = 1024  # buffers per write call when appending to a pack (Linux's IOV_MAX)
_MOVE = 32 << 20  # bytes of first-format blobs moved into packs per transaction

_SCHEMA = (
    # Each pack's committed end (bytes past it are a killed writer's, and written over) and the
    # bytes of it that live blobs use (gc rewrites a pack when they fall under half).
    "CREATE TABLE IF NOT EXISTS pack (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " size INTEGER NOT NULL, live INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS packed (digest BLOB PRIMARY KEY, pack INTEGER NOT NULL,"
    " offset INTEGER NOT NULL, size INTEGER NOT NULL, stored_at REAL NOT NULL) WITHOUT ROWID",
)


def _touch(path: str) -> None:
    """Mark a blob file as stored now (see ``list``: gc's grace period counts from then)."""
    try:
        os.utime(path)
    except OSError:
        pass  # best effort: a store shared read-only, say


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


_FICLONE = 0x40049409  # Linux ioctl: a copy-on-write clone of a whole file (btrfs, XFS, ...)


def _preallocate(fd: int, size: int, start: int = 0) -> None:
    try:
        os.posix_fallocate(fd, start, size - start)
    except (AttributeError, OSError):
        pass  # not supported here: the write still works, only slower


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        n = os.write(fd, data)
        data = data[n:]


def _pread_all(fd: int, length: int, offset: int) -> bytes:
    parts: list[bytes] = []
    while length > 0:
        chunk = os.pread(fd, length, offset)
        if not chunk:
            break
        parts.append(chunk)
        offset += len(chunk)
        length -= len(chunk)
    return b"".join(parts)


def _pwritev_all(fd: int, buffers: list[bytes], offset: int) -> None:
    """Write ``buffers`` back to back at ``offset`` (one system call, no copy, when it can)."""
    n = os.pwritev(fd, buffers, offset)
    total = sum(len(b) for b in buffers)
    if n < total:  # a short write: the rest one piece at a time
        rest = memoryview(b"".join(buffers))[n:]
        offset += n
        while rest:
            n = os.pwrite(fd, rest, offset)
            rest = rest[n:]
            offset += n


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the original error is the one to report


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBlobStore:
    """A BlobStore on a local directory (the embedded store's, or a server's)."""

    def __init__(self, root: str, *, small_limit: int = SMALL_LIMIT, durable: bool = True) -> None:
        self.root = os.path.abspath(root)
        self.small_limit = small_limit
        self._durable = durable
        self._tmp = os.path.join(self.root, "tmp")
        os.makedirs(os.path.join(self.root, BLOB_ROOT), exist_ok=True)
        os.makedirs(self._tmp, exist_ok=True)
        self._db_path = os.path.join(self.root, "small.sqlite")
        self._packs = os.path.join(self.root, "packs")  # created with the first pack
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._conn_pid = 0
        self._legacy = False  # small.sqlite still holds first-format blobs (table ``blob``)

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def read_only(self) -> bool:
        return False

    def _db(self) -> sqlite3.Connection:
        # A connection must not cross fork(); open a fresh one in a child process.
        if self._conn is None or self._conn_pid != os.getpid():
            conn = sqlite3.connect(
                self._db_path, timeout=60, isolation_level=None, check_same_thread=False
            )
            try:
                # The index only (the bytes are in packs): small pages waste least.
                conn.execute("PRAGMA page_size=4096")
                # Pages freed by gc go back to the file system (``incremental_vacuum`` after each
                # delete). Takes effect when the file is created; older stores keep their mode.
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
            self._legacy = legacy is not None
            if self._legacy:
                try:
                    self.upgrade()
                except (sqlite3.Error, OSError):
                    pass  # a store we cannot write (yet): first-format blobs are read in place
        return self._conn

    def _pack_path(self, pack: int) -> str:
        return os.path.join(self._packs, f"{pack:08d}.pack")

    def path_of(self, digest: str) -> str:
        return os.path.join(self.root, *blob_path_parts(digest))

    # -- writes --------------------------------------------------------------------------------

    def put(self, digest: str, data: bytes) -> None:
        self.put_many([(digest, data)])

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        now = time.time()
        small = [(digest_raw(d), b, now) for d, b in items if len(b) < self.small_limit]
        for digest, data in items:
            if len(data) >= self.small_limit:
                try:
                    self._put_large_bytes(digest, data)
                except OSError as exc:
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                        raise self._store_error(f"could not store blob {digest}", exc) from None
                    raise
        if not small:
            return
        self._put_small(small)

    def _put_small(self, items: Sequence[tuple[bytes, bytes, float]]) -> None:
        """Append the blobs not yet stored to a pack and index them, in one transaction; those
        already stored get their ``stored_at`` refreshed (gc's grace period counts from the last
        time a writer relied on the blob)."""
        with self._lock:
            db = self._db()
            try:
                db.execute("BEGIN IMMEDIATE")
                # Usually every blob is new (writers ask which are missing first): then the index
                # rows go in as one statement, and only a batch with a known blob is sorted out.
                if not self._legacy and self._append(db, items, only_new=True):
                    db.execute("COMMIT")
                    return
                present = self._present(db, [raw for raw, _, _ in items])
                for table in ("packed", "blob") if self._legacy else ("packed",):
                    db.executemany(
                        f"UPDATE {table} SET stored_at = ? WHERE digest = ?",
                        [(at, raw) for raw, _, at in items if raw in present],
                    )
                new: dict[bytes, tuple[bytes, bytes, float]] = {}
                for item in items:
                    if item[0] not in present:
                        new.setdefault(item[0], item)
                if new:
                    self._append(db, list(new.values()))
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(db)
                raise self._store_error("could not store blobs", exc) from None
            except OSError as exc:
                _rollback(db)
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise self._store_error("could not store blobs", exc) from None
                raise

    def _present(self, db: sqlite3.Connection, raws: Sequence[bytes]) -> set[bytes]:
        """Those of ``raws`` in a pack (or, until moved, in the first format's table)."""
        found: set[bytes] = set()
        tables = ("packed", "blob") if self._legacy else ("packed",)
        for start in range(0, len(raws), _BATCH):
            chunk = raws[start : start + _BATCH]
            marks = ",".join("?" * len(chunk))
            for table in tables:
                rows = db.execute(f"SELECT digest FROM {table} WHERE digest IN ({marks})", chunk)
                found.update(bytes(r[0]) for r in rows)
        return found

    def _append(
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
            os.makedirs(self._packs, exist_ok=True)
        fd = os.open(self._pack_path(pack), os.O_WRONLY | os.O_CREAT | _O_CLOEXEC, 0o644)
        try:
            # Reserving the space first lets the file system lay the batch out in one go.
            _preallocate(fd, end, start)
            for i in range(0, len(items), _IOV):
                buffers = [data for _, data, _ in items[i : i + _IOV]]
                _pwritev_all(fd, buffers, start)
                start += sum(len(b) for b in buffers)
            if self._durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        if fresh and self._durable:  # a new pack file (every PACK_LIMIT bytes): its name too
            _fsync_dir(self._packs)
            _fsync_dir(self.root)
        return True

    def _put_large_bytes(self, digest: str, data: bytes) -> None:
        final = self.path_of(digest)
        if os.path.exists(final):
            _touch(final)
            return
        tmp = self._tmp_path()
        with open(tmp, "xb") as f:
            f.write(data)
            self._flush(f)
        self._install(tmp, final)

    def _tmp_path(self) -> str:
        return os.path.join(self._tmp, f"{uuid.uuid4().hex}.partial")

    def _flush(self, f: BinaryIO) -> None:
        if self._durable:
            f.flush()
            os.fsync(f.fileno())

    def _settle(self, tmp: str, digest: str) -> None:
        """Make the complete file ``tmp`` blob ``digest``; when the store has it already, drop
        ``tmp`` and refresh the blob's age (gc spares young blobs)."""
        final = self.path_of(digest)
        if os.path.exists(final):
            os.unlink(tmp)
            _touch(final)
        else:
            self._install(tmp, final)

    def _install(self, tmp: str, final: str) -> None:
        os.chmod(tmp, 0o444)
        parent = os.path.dirname(final)
        os.makedirs(parent, exist_ok=True)
        os.replace(tmp, final)  # same content if it raced another writer: harmless
        if self._durable:
            _fsync_dir(parent)

    def put_file(self, path: str, *, link: bool = False) -> BlobInfo:
        """Store a file's content. With ``link`` (``policy="immutable"``), a large file is
        cloned into the store where the file system offers copy-on-write clones (btrfs, XFS,
        ...): no bytes are copied, and a later change of the user's file cannot reach the blob.
        Elsewhere it is copied. It is never hard-linked: the user's file would *be* the blob, and
        writing over it (``torch.save`` to the same path) would change stored content."""
        try:
            return self._put_file(path, link)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise self._store_error(f"could not store {path}", exc) from None
            raise

    def _put_file(self, path: str, link: bool) -> BlobInfo:
        with open(path, "rb") as src:
            size = os.fstat(src.fileno()).st_size
            if link and size >= self.small_limit:
                cloned = self._put_clone(src, size)
                if cloned is not None:
                    return cloned
            if size < self.small_limit:
                data = src.read()
                digest = digest_bytes(data)
                self.put_many([(digest, data)])
                return BlobInfo(digest, len(data))
            hasher = new_hasher()
            tmp = self._tmp_path()
            written = 0
            try:
                out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o644)
                try:
                    # Reserving the space first lets the file system lay the file out in one go:
                    # measured, it halves the cost of writing and flushing a 256 MiB blob.
                    _preallocate(out, size)
                    buf = bytearray(CHUNK)
                    view = memoryview(buf)
                    fd = src.fileno()
                    with transfer("storing", size, path) as advance:
                        while n := os.readv(fd, [buf]):
                            hasher.update(view[:n])
                            _write_all(out, view[:n])
                            written += n
                            advance(n)
                    if written != size:
                        os.ftruncate(out, written)  # the file shrank while it was read
                    if self._durable:
                        os.fsync(out)
                finally:
                    os.close(out)
                digest = digest_from_hasher(hasher)
                self._settle(tmp, digest)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        return BlobInfo(digest, written)

    def _put_clone(self, src: BinaryIO, size: int) -> BlobInfo | None:
        """Clone ``src`` into the store and hash the clone (which no one else can change), or
        None when this file system cannot clone."""
        tmp = self._tmp_path()
        try:
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o644)
            try:
                fcntl.ioctl(out, _FICLONE, src.fileno())
                if self._durable:
                    os.fsync(out)  # as durable as a copy: the clone's metadata is on disk
            finally:
                os.close(out)
        except OSError:
            if os.path.exists(tmp):
                os.unlink(tmp)
            return None  # no clones on this file system (or across two): copy instead
        try:
            with open(tmp, "rb") as clone, transfer("hashing", size, src.name) as advance:
                digest, written = hash_stream(clone, advance)
            self._settle(tmp, digest)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return BlobInfo(digest, written)

    def take_file(self, path: str, digest: str) -> BlobInfo:
        """A large file on the store's file system (e.g. under ``root/tmp``) is moved in as
        blob ``digest`` (a rename, no copy); a small one, or one elsewhere, is copied (into a
        pack). The caller MUST have verified the file's content against ``digest``."""
        size = os.path.getsize(path)
        if size < self.small_limit:
            return put_verified_file(self, path, digest)
        final = self.path_of(digest)
        if os.path.exists(final):
            os.unlink(path)
            return BlobInfo(digest, size)
        try:
            self._install(path, final)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            return put_verified_file(self, path, digest)  # another file system: copied
        return BlobInfo(digest, size)

    # -- reads ---------------------------------------------------------------------------------

    def small(self, digest: str) -> bytes | None:
        """A small blob's bytes (verified), or None if it is absent or not a small blob."""
        data = self._small(digest)
        if data is not None and digest_bytes(data) != digest:
            raise DigestMismatchError(f"blob {digest} in {self.root} is damaged")
        return data

    def small_many(self, digests: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for d in dict.fromkeys(digests):
            data = self.small(d)
            if data is not None:
                found[d] = data
        return found

    def local_path(self, digest: str) -> str | None:
        path = self.path_of(digest)
        return path if os.path.exists(path) else None

    def presigned_url(self, digest: str, start: int = 0, length: int | None = None) -> str | None:
        return None

    def _small(self, digest: str) -> bytes | None:
        return self._read_small(digest_raw(digest), 0, None)

    def _read_small(self, raw: bytes, start: int, length: int | None) -> bytes | None:
        """Bytes ``[start, start + length)`` (all with ``length=None``) of a small blob, read in
        place from its pack (or the first format's row), or None if there is no such small blob.
        A pack that gc rewrote between the lookup and the read is looked up again."""
        for _ in range(5):
            with self._lock:
                db = self._db()
                row = db.execute(
                    "SELECT pack, offset, size FROM packed WHERE digest = ?", (raw,)
                ).fetchone()
                if row is None:
                    return self._read_legacy(db, raw, start, length)
            pack, offset, size = (int(v) for v in row)
            begin = min(start, size)
            count = size - begin if length is None else max(0, min(length, size - begin))
            try:
                fd = os.open(self._pack_path(pack), os.O_RDONLY | _O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                return _pread_all(fd, count, offset + begin)
            finally:
                os.close(fd)
        return None  # indexed, but its pack is gone: a missing blob (``cairn verify`` says so)

    def _read_legacy(
        self, db: sqlite3.Connection, raw: bytes, start: int, length: int | None
    ) -> bytes | None:
        if not self._legacy:
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
            self._legacy = False  # moved into packs by another process meanwhile
            return self._read_small(raw, start, length)
        return None if row is None else bytes(row[0])

    def get(self, digest: str) -> bytes:
        data = self._small(digest)
        if data is None:
            try:
                with open(self.path_of(digest), "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                raise BlobNotFoundError(
                    f"blob {digest} is not in the store at {self.root}"
                ) from None
        if digest_bytes(data) != digest:
            raise DigestMismatchError(
                f"blob {digest} in {self.root} is damaged: its content has another digest;"
                " run `cairn verify` to find every damaged blob"
            )
        return data

    def open(self, digest: str) -> BinaryIO:
        data = self._small(digest)
        if data is not None:
            return io.BytesIO(data)
        try:
            return open(self.path_of(digest), "rb")
        except FileNotFoundError:
            raise BlobNotFoundError(f"blob {digest} is not in the store at {self.root}") from None

    def get_range(self, digest: str, start: int, length: int) -> bytes:
        """Read the range in place: ``pread`` of the pack or of the blob file
        (no copy of the blob, no read of the rest of it)."""
        check_range(start, length)
        if length == 0:
            return b""
        small = self._read_small(digest_raw(digest), start, length)
        if small is not None:
            return small
        try:
            fd = os.open(self.path_of(digest), os.O_RDONLY | _O_CLOEXEC)
        except FileNotFoundError:
            raise BlobNotFoundError(f"blob {digest} is not in the store at {self.root}") from None
        try:
            return _pread_all(fd, length, start)
        finally:
            os.close(fd)

    def copy_to(self, digest: str, dest: str) -> None:
        data = self._small(digest)
        if data is not None:
            if digest_bytes(data) != digest:
                raise DigestMismatchError(f"blob {digest} in {self.root} is damaged")
            with open(dest, "wb") as f:
                f.write(data)
            return
        hasher = new_hasher()
        with (
            self.open(digest) as src,
            open(dest, "wb") as dst,
            transfer("copying", os.fstat(src.fileno()).st_size, None) as advance,
        ):
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            while n := src.readinto(buf):  # type: ignore[attr-defined]
                hasher.update(view[:n])
                dst.write(view[:n])
                advance(n)
        if digest_from_hasher(hasher) != digest:
            os.unlink(dest)
            raise DigestMismatchError(
                f"blob {digest} in {self.root} is damaged: its content has another digest"
            )

    def get_many(self, digests: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        """``(digest, content)`` of each blob, small ones looked up many per query; each
        verified."""
        wanted = list(dict.fromkeys(digests))
        for start in range(0, len(wanted), _BATCH):
            chunk = wanted[start : start + _BATCH]
            marks = ",".join("?" * len(chunk))
            with self._lock:
                rows = (
                    self._db()
                    .execute(
                        f"SELECT digest, pack, offset, size FROM packed WHERE digest IN ({marks})",
                        [digest_raw(d) for d in chunk],
                    )
                    .fetchall()
                )
            where = {digest_from_raw(bytes(r[0])): (int(r[1]), int(r[2]), int(r[3])) for r in rows}
            fds: dict[int, int] = {}
            try:
                for digest in chunk:
                    data = None
                    spot = where.get(digest)
                    if spot is not None:
                        pack, offset, size = spot
                        fd = fds.get(pack)
                        if fd is None:
                            try:
                                fd = fds[pack] = os.open(
                                    self._pack_path(pack), os.O_RDONLY | _O_CLOEXEC
                                )
                            except FileNotFoundError:
                                fd = None  # rewritten by gc meanwhile: looked up again below
                        if fd is not None:
                            data = _pread_all(fd, size, offset)
                    if data is None:
                        yield digest, self.get(digest)  # large, moved, first-format, or absent
                    elif digest_bytes(data) != digest:
                        raise DigestMismatchError(f"blob {digest} in {self.root} is damaged")
                    else:
                        yield digest, data
            finally:
                for fd in fds.values():
                    os.close(fd)

    def has_many(self, digests: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(digests))
        with self._lock:
            raws = self._present(self._db(), [digest_raw(d) for d in wanted])
        found = {digest_from_raw(r) for r in raws}
        found.update(d for d in wanted if d not in found and os.path.exists(self.path_of(d)))
        return found

    def size(self, digest: str) -> int | None:
        raw = digest_raw(digest)
        with self._lock:
            db = self._db()
            row = db.execute("SELECT size FROM packed WHERE digest = ?", (raw,)).fetchone()
            if row is None and self._legacy:
                row = db.execute("SELECT size FROM blob WHERE digest = ?", (raw,)).fetchone()
        if row is not None:
            return int(row[0])
        try:
            return os.stat(self.path_of(digest)).st_size
        except FileNotFoundError:
            return None

    def delete_many(self, digests: Iterable[str]) -> int:
        """Delete blobs. Large files are unlinked first: on a full disk that frees the space
        the index then needs to record its own deletions. Then packs whose live bytes fell
        under half are rewritten (``compact``), which gives the deleted blobs' bytes back."""
        wanted = list(dict.fromkeys(digests))
        removed = 0
        for d in wanted:
            try:
                os.unlink(self.path_of(d))
                removed += 1
            except FileNotFoundError:
                pass
        with self._lock:
            db = self._db()
            try:
                db.execute("BEGIN IMMEDIATE")
                freed: dict[int, int] = {}
                for start in range(0, len(wanted), _BATCH):
                    chunk = [digest_raw(d) for d in wanted[start : start + _BATCH]]
                    marks = ",".join("?" * len(chunk))
                    for pack, size in db.execute(
                        f"SELECT pack, size FROM packed WHERE digest IN ({marks})", chunk
                    ):
                        freed[int(pack)] = freed.get(int(pack), 0) + int(size)
                    removed += db.execute(
                        f"DELETE FROM packed WHERE digest IN ({marks})", chunk
                    ).rowcount
                    if self._legacy:
                        removed += db.execute(
                            f"DELETE FROM blob WHERE digest IN ({marks})", chunk
                        ).rowcount
                db.executemany(
                    "UPDATE pack SET live = live - ? WHERE id = ?",
                    [(n, pack) for pack, n in freed.items()],
                )
                db.execute("COMMIT")
                db.execute("PRAGMA incremental_vacuum")  # give the freed pages back
            except sqlite3.Error as exc:
                _rollback(db)
                raise self._store_error("could not remove blobs", exc) from None
        self.compact()
        return removed

    def compact(self) -> int:
        """Rewrite each pack whose live blobs use less than half of it: its live blobs are
        appended to another pack and the index points at them there (one transaction), then the
        old pack is removed. Pack files no index row refers to (a writer killed after creating
        one) are removed too. Returns the bytes given back. On a full disk the packs are left as
        they are (the rows are gone already; a later gc finishes)."""
        given_back = 0
        with self._lock:
            db = self._db()
            candidates = db.execute("SELECT id FROM pack WHERE live * 2 < size").fetchall()
            for (pack,) in candidates:
                try:
                    given_back += self._compact_one(db, int(pack))
                except sqlite3.Error as exc:
                    _rollback(db)
                    raise self._store_error("could not compact blob packs", exc) from None
                except OSError as exc:
                    _rollback(db)
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                        return given_back
                    raise
            try:
                given_back += self._remove_orphan_packs(db)
            except sqlite3.Error as exc:
                _rollback(db)
                raise self._store_error("could not compact blob packs", exc) from None
        return given_back

    def _compact_one(self, db: sqlite3.Connection, pack: int) -> int:
        db.execute("BEGIN IMMEDIATE")
        row = db.execute("SELECT size, live FROM pack WHERE id = ?", (pack,)).fetchone()
        if row is None or int(row[1]) * 2 >= int(row[0]):
            db.execute("COMMIT")  # compacted by another process meanwhile
            return 0
        size = int(row[0])
        rows = db.execute(
            "SELECT digest, offset, size, stored_at FROM packed WHERE pack = ? ORDER BY offset",
            (pack,),
        ).fetchall()
        items: list[tuple[bytes, bytes, float]] = []
        if rows:
            fd = os.open(self._pack_path(pack), os.O_RDONLY | _O_CLOEXEC)
            try:
                for raw, offset, n, stored_at in rows:
                    items.append((bytes(raw), _pread_all(fd, int(n), int(offset)), stored_at))
            finally:
                os.close(fd)
            self._append(db, items, avoid=pack)
        db.execute("DELETE FROM pack WHERE id = ?", (pack,))
        db.execute("COMMIT")
        try:
            os.unlink(self._pack_path(pack))
        except FileNotFoundError:
            pass
        return size - sum(len(data) for _, data, _ in items)

    def _remove_orphan_packs(self, db: sqlite3.Connection) -> int:
        # Writers create and write pack files only while they hold the write lock: holding it,
        # a pack file without a row is no one's.
        db.execute("BEGIN IMMEDIATE")
        try:
            known = {int(r[0]) for r in db.execute("SELECT id FROM pack")}
            given_back = 0
            entries = list(os.scandir(self._packs)) if os.path.isdir(self._packs) else []
            for entry in entries:
                stem, _, ext = entry.name.partition(".")
                if ext != "pack" or not stem.isdigit() or int(stem) in known:
                    continue
                try:
                    given_back += entry.stat().st_size
                    os.unlink(entry.path)
                except FileNotFoundError:
                    pass
        finally:
            db.execute("COMMIT")
        return given_back

    def upgrade(self) -> int:
        """Move the blobs of a first-format store (bytes in the ``blob`` table of
        ``small.sqlite``) into packs, some MiB per transaction (a kill in between loses nothing:
        each blob is in one place or the other, both are read), then drop the table and give
        its pages back. Returns how many blobs were moved. Runs when the store is opened."""
        moved, dropped = 0, False
        with self._lock:
            db = self._db()
            while self._legacy:
                try:
                    n = self._move_some(db)
                except BaseException:
                    _rollback(db)
                    raise
                moved += n
                dropped = dropped or (n == 0 and not self._legacy)
            if dropped:
                try:
                    db.execute("VACUUM")  # the dropped table's pages (and the new page size)
                except sqlite3.Error:
                    pass  # busy: the pages stay free inside the file until the next gc
        return moved

    def _move_some(self, db: sqlite3.Connection) -> int:
        db.execute("BEGIN IMMEDIATE")
        exists = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'blob'"
        ).fetchone()
        if exists is None:
            db.execute("COMMIT")
            self._legacy = False
            return 0
        batch: list[tuple[int, bytes, bytes, float]] = []
        taken = 0
        cur = db.execute("SELECT rowid, digest, data, stored_at FROM blob ORDER BY rowid")
        for rowid, raw, data, stored_at in cur:
            batch.append((int(rowid), bytes(raw), bytes(data), float(stored_at)))
            taken += len(data)
            if taken >= _MOVE:
                break
        cur.close()
        if not batch:
            db.execute("DROP TABLE blob")
            db.execute("COMMIT")
            self._legacy = False
            return 0
        packed = {
            bytes(r[0])
            for start in range(0, len(batch), _BATCH)
            for r in db.execute(
                "SELECT digest FROM packed WHERE digest IN"
                f" ({','.join('?' * len(batch[start : start + _BATCH]))})",
                [b[1] for b in batch[start : start + _BATCH]],
            )
        }
        self._append(db, [(raw, data, at) for _, raw, data, at in batch if raw not in packed])
        db.executemany("DELETE FROM blob WHERE rowid = ?", [(b[0],) for b in batch])
        db.execute("COMMIT")
        return len(batch)

    def _store_error(self, what: str, exc: BaseException) -> CommError:
        """A write that failed, naming this store (and saying so when it is full)."""
        text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        full = (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "full" in text.lower()
        if full:
            return CommError(
                f"{what}: the blob store {self.root} is full ({text}); free space on its disk,"
                " or delete versions and run `cairn gc`"
            )
        return CommError(f"{what} in the blob store {self.root}: {text}")

    def list(self) -> Iterator[BlobInfo]:
        with self._lock:
            db = self._db()
            rows = db.execute("SELECT digest, size, stored_at FROM packed").fetchall()
            if self._legacy:
                rows += db.execute("SELECT digest, size, stored_at FROM blob").fetchall()
        for raw, size, stored_at in rows:
            yield BlobInfo(digest_from_raw(bytes(raw)), int(size), float(stored_at))
        base = os.path.join(self.root, BLOB_ROOT)
        for sub in sorted(os.listdir(base)):
            subdir = os.path.join(base, sub)
            for entry in os.scandir(subdir):
                digest = digest_in_folder(sub, entry.name)
                if digest is not None and entry.is_file():
                    st = entry.stat()
                    # A hard-linked blob (policy="immutable") keeps its source's mtime; linking
                    # and making it read-only set ctime, so ctime tells when it was stored.
                    stored_at = max(st.st_mtime, st.st_ctime)
                    yield BlobInfo(digest, st.st_size, stored_at)

    def remove_stale_temp(self, older_than: float) -> int:
        """Delete partial files older than ``older_than`` seconds (left by killed writers)."""
        removed = 0
        now = time.time()
        for entry in os.scandir(self._tmp):
            if not entry.name.endswith(".partial"):
                continue  # e.g. a server's upload spool (tmp/uploads), swept by its owner
            try:
                if now - entry.stat().st_mtime > older_than:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                pass
        return removed

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._conn_pid == os.getpid():
                self._conn.close()
            self._conn = None
