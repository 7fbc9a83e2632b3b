"""Content-addressed blobs on local disk.

Layout under ``root`` (see docs/design.md, "Blobs"):

* ``sha256/ab/cdef...``: one read-only file per blob of ``small_limit`` bytes or more, written to
  ``tmp/`` first, flushed to disk, then renamed into place;
* ``small.sqlite``: blobs under ``small_limit`` bytes, keyed by their raw digest. Creating a file
  costs more than writing 4 KiB on most file systems, so many small files cost many times their
  bytes; one transaction for thousands of small blobs costs one flush (SQLite's own measurements
  put blobs under ~100 KB faster in a database than in files).

Several processes may read and write the same store at once: files are renamed atomically and
SQLite serialises writers (a rollback journal, ``TRUNCATE``, not WAL: see ``_db``; a writer waits
up to a minute for the lock).
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
)
from cairn.errors import BlobNotFoundError, CommError, DigestMismatchError
from cairn.storage._base import BlobInfo, check_range
from cairn.storage._hashing import hash_stream

SMALL_LIMIT = 128 * 1024
CHUNK = 1 << 20
_BATCH = 500  # SQLite host parameters per statement, well under its limit


def _touch(path: str) -> None:
    """Mark a blob file as stored now (see ``list``: gc's grace period counts from then)."""
    try:
        os.utime(path)
    except OSError:
        pass  # best effort: a store shared read-only, say


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


_FICLONE = 0x40049409  # Linux ioctl: a copy-on-write clone of a whole file (btrfs, XFS, ...)


def _preallocate(fd: int, size: int) -> None:
    try:
        os.posix_fallocate(fd, 0, size)
    except (AttributeError, OSError):
        pass  # not supported here: the write still works, only slower


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        n = os.write(fd, data)
        data = data[n:]


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
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._conn_pid = 0

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
                conn.execute("PRAGMA page_size=16384")
                # Pages freed by gc go back to the file system (``incremental_vacuum`` after each
                # delete). Takes effect when the file is created; older stores keep their mode.
                conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
                # A rollback journal, not WAL: blobs are appended in large batches, and WAL would
                # write every byte twice (log, then checkpoint). Readers wait out a commit.
                conn.execute("PRAGMA journal_mode=TRUNCATE")
                conn.execute(f"PRAGMA synchronous={'FULL' if self._durable else 'OFF'}")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS blob (digest BLOB PRIMARY KEY,"
                    " size INTEGER NOT NULL, stored_at REAL NOT NULL, data BLOB NOT NULL)"
                )
            except sqlite3.Error as exc:
                conn.close()
                raise CommError(f"cannot open the blob index {self._db_path}: {exc}") from None
            self._conn, self._conn_pid = conn, os.getpid()
        return self._conn

    def path_of(self, digest: str) -> str:
        return os.path.join(self.root, *blob_path_parts(digest))

    # -- writes --------------------------------------------------------------------------------

    def put(self, digest: str, data: bytes) -> None:
        self.put_many([(digest, data)])

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        now = time.time()
        small = [(digest_raw(d), len(b), now, b) for d, b in items if len(b) < self.small_limit]
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
        with self._lock:
            db = self._db()
            try:
                db.execute("BEGIN IMMEDIATE")
                # Storing content again refreshes stored_at: gc's grace period counts from the
                # last time a writer relied on the blob.
                db.executemany(
                    "INSERT INTO blob (digest, size, stored_at, data) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (digest) DO UPDATE SET stored_at = excluded.stored_at",
                    small,
                )
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                if db.in_transaction:
                    try:
                        db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass  # the original error is the one to report
                raise self._store_error("could not store blobs", exc) from None

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
                    while n := os.readv(fd, [buf]):
                        hasher.update(view[:n])
                        _write_all(out, view[:n])
                        written += n
                    if written != size:
                        os.ftruncate(out, written)  # the file shrank while it was read
                    if self._durable:
                        os.fsync(out)
                finally:
                    os.close(out)
                digest = digest_from_hasher(hasher)
                final = self.path_of(digest)
                if os.path.exists(final):
                    os.unlink(tmp)
                    _touch(final)
                else:
                    self._install(tmp, final)
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
            with open(tmp, "rb") as clone:
                digest, written = hash_stream(clone)
            final = self.path_of(digest)
            if os.path.exists(final):
                os.unlink(tmp)
                _touch(final)
            else:
                self._install(tmp, final)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return BlobInfo(digest, written)

    def adopt(self, path: str, digest: str) -> None:
        """Move a durable file into the store as blob ``digest`` (rename, no copy). The caller
        MUST have verified the file's content against ``digest``; ``path`` must be on the
        store's file system (e.g. under ``root/tmp``)."""
        final = self.path_of(digest)
        if os.path.exists(final):
            os.unlink(path)
            return
        self._install(path, final)

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
        with self._lock:
            row = (
                self._db()
                .execute("SELECT data FROM blob WHERE digest = ?", (digest_raw(digest),))
                .fetchone()
            )
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
        """Read the range in place: a slice of the row in SQLite, or ``pread`` of the blob file
        (no copy of the blob, no read of the rest of it)."""
        check_range(start, length)
        if length == 0:
            return b""
        with self._lock:
            row = (
                self._db()
                .execute(
                    "SELECT substr(data, ?, ?) FROM blob WHERE digest = ?",
                    (start + 1, length, digest_raw(digest)),
                )
                .fetchone()
            )
        if row is not None:
            return bytes(row[0])
        try:
            fd = os.open(self.path_of(digest), os.O_RDONLY | _O_CLOEXEC)
        except FileNotFoundError:
            raise BlobNotFoundError(f"blob {digest} is not in the store at {self.root}") from None
        try:
            parts: list[bytes] = []
            while length > 0:
                chunk = os.pread(fd, length, start)
                if not chunk:
                    break
                parts.append(chunk)
                start += len(chunk)
                length -= len(chunk)
            return b"".join(parts)
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
        with self.open(digest) as src, open(dest, "wb") as dst:
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            while n := src.readinto(buf):  # type: ignore[attr-defined]
                hasher.update(view[:n])
                dst.write(view[:n])
        if digest_from_hasher(hasher) != digest:
            os.unlink(dest)
            raise DigestMismatchError(
                f"blob {digest} in {self.root} is damaged: its content has another digest"
            )

    def get_many(self, digests: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        """``(digest, content)`` of each blob, small ones many per query; each verified."""
        wanted = list(dict.fromkeys(digests))
        for start in range(0, len(wanted), _BATCH):
            chunk = wanted[start : start + _BATCH]
            marks = ",".join("?" * len(chunk))
            with self._lock:
                rows = (
                    self._db()
                    .execute(
                        f"SELECT digest, data FROM blob WHERE digest IN ({marks})",
                        [digest_raw(d) for d in chunk],
                    )
                    .fetchall()
                )
            small = {digest_from_raw(bytes(r[0])): bytes(r[1]) for r in rows}
            for digest in chunk:
                data = small.get(digest)
                if data is None:
                    data = self.get(digest)  # a large blob (or not there: BlobNotFoundError)
                elif digest_bytes(data) != digest:
                    raise DigestMismatchError(f"blob {digest} in {self.root} is damaged")
                yield digest, data

    def has_many(self, digests: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(digests))
        found: set[str] = set()
        with self._lock:
            db = self._db()
            for start in range(0, len(wanted), _BATCH):
                chunk = wanted[start : start + _BATCH]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT digest FROM blob WHERE digest IN ({marks})",
                    [digest_raw(d) for d in chunk],
                ).fetchall()
                found.update(digest_from_raw(bytes(r[0])) for r in rows)
        found.update(d for d in wanted if d not in found and os.path.exists(self.path_of(d)))
        return found

    def size(self, digest: str) -> int | None:
        with self._lock:
            row = (
                self._db()
                .execute("SELECT size FROM blob WHERE digest = ?", (digest_raw(digest),))
                .fetchone()
            )
        if row is not None:
            return int(row[0])
        try:
            return os.stat(self.path_of(digest)).st_size
        except FileNotFoundError:
            return None

    def delete_many(self, digests: Iterable[str]) -> int:
        """Delete blobs. Large files are unlinked first: on a full disk that frees the space
        the small-blob database then needs to record its own deletions."""
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
                for start in range(0, len(wanted), _BATCH):
                    chunk = wanted[start : start + _BATCH]
                    marks = ",".join("?" * len(chunk))
                    cur = db.execute(
                        f"DELETE FROM blob WHERE digest IN ({marks})",
                        [digest_raw(d) for d in chunk],
                    )
                    removed += cur.rowcount
                db.execute("COMMIT")
                db.execute("PRAGMA incremental_vacuum")  # give the freed pages back
            except sqlite3.Error as exc:
                if db.in_transaction:
                    try:
                        db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass  # the original error is the one to report
                raise self._store_error("could not remove blobs", exc) from None
        return removed

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
            rows = self._db().execute("SELECT digest, size, stored_at FROM blob").fetchall()
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
