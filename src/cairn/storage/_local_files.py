"""The local store's large blobs: one read-only file per blob (``sha256/ab/cdef...``).

A file is written under ``tmp/`` (``<random>.partial``), flushed to disk, made read-only and
renamed into place, and its directory flushed, so a reader sees a whole blob or none; a killed
writer leaves only a partial file, which ``remove_stale_temp`` deletes once it is old. Blobs given
as bytes (``put_many``) are made durable a batch at a time: all written, all flushed, all renamed,
each directory flushed once (see docs/design.md, "Blobs"). With ``policy="immutable"`` a file is
cloned (copy-on-write) where the file system can, never hard-linked.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from cairn._lazy import TYPE_CHECKING
from cairn.core import (
    BLOB_ROOT,
    blob_path_parts,
    digest_from_hasher,
    digest_in_folder,
    new_hasher,
)
from cairn.errors import BlobNotFoundError
from cairn.storage._hashing import CHUNK, hash_stream
from cairn.storage._local_direct import DirectWriter
from cairn.storage._local_io import (
    O_CLOEXEC,
    fsync_dir,
    pread_all,
    preallocate,
    start_writeback,
    touch,
    write_all,
)
from cairn.storage._location import location_withheld

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from typing import BinaryIO, TypeVar

    from cairn.storage._base import BlobInfo

    T = TypeVar("T")

# A staging worker stores its batches through ``put_many``: ``BlobInfo`` (a dataclass) and the
# progress of a transfer (``typing``) are imported where a stream or a listing needs them.

_FICLONE = 0x40049409  # Linux ioctl: a copy-on-write clone of a whole file (btrfs, XFS, ...)
# Flushes waiting at once when a batch of blob files is made durable (measured on ext4: 500 x
# 200 KiB flushed 2-4x faster by eight threads than one by one; each thread mostly waits).
_FLUSHERS = 8


def _each(fn: Callable[[T], object], items: list[T]) -> None:
    """``fn`` on every item, several at once when there are many: each call waits for the disk
    (a flush), and the file system joins flushes that wait together into one journal commit."""
    if len(items) < 4:
        for item in items:
            fn(item)
        return
    from concurrent.futures import ThreadPoolExecutor  # not on a re-log's path

    with ThreadPoolExecutor(min(_FLUSHERS, len(items)), thread_name_prefix="cairn-fsync") as pool:
        for _ in pool.map(fn, items):
            pass


class BlobFiles:
    """Blob files under ``root/sha256`` and their partial files under ``root/tmp``."""

    def __init__(self, root: str, *, durable: bool) -> None:
        self.root = root
        self._durable = durable
        self.tmp = os.path.join(root, "tmp")
        self._direct = DirectWriter()
        os.makedirs(os.path.join(root, BLOB_ROOT), exist_ok=True)
        os.makedirs(self.tmp, exist_ok=True)

    def path_of(self, digest: str) -> str:
        return os.path.join(self.root, *blob_path_parts(digest))

    # -- writes --------------------------------------------------------------------------------

    def put_bytes(self, digest: str, data: bytes) -> None:
        self.put_many([(digest, data)])

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Write blobs whose bytes are in memory, their durability batched: every new blob is
        written to its partial file, then the partial files are flushed (several at once),
        renamed into place, and each directory that got a name is flushed once. When this
        returns, every blob is durable under its name (as one ``_install`` each would leave it,
        at a fraction of the cost: a flush waits for the disk, and one flush of a directory
        covers all its new names). A kill before the end leaves partial files (swept as stale)
        or blobs complete under their names, never a name with less than its content."""
        pending: list[tuple[str, str, int]] = []  # partial file, final name, open descriptor
        try:
            for digest, data in items:
                final = self.path_of(digest)
                if os.path.exists(final):
                    touch(final)
                    continue
                tmp = self._tmp_path()
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_CLOEXEC, 0o444)
                pending.append((tmp, final, fd))
                # Past the page cache when the bytes are flushed anyway (``_local_direct.py``).
                if not (self._durable and self._direct.write(fd, 0, [data])):
                    write_all(fd, memoryview(data))
                    if self._durable:
                        start_writeback(fd)
            if self._durable:
                _each(os.fsync, [fd for _, _, fd in pending])
        finally:
            for _, _, fd in pending:
                os.close(fd)
        if not pending:
            return
        parents: dict[str, None] = {}
        created = False
        try:
            for tmp, final, _ in pending:
                parent = os.path.dirname(final)
                if parent not in parents:
                    if not os.path.isdir(parent):
                        os.makedirs(parent, exist_ok=True)
                        created = True
                    parents[parent] = None
                os.replace(tmp, final)  # same content if it raced another writer: harmless
        except BaseException:
            for tmp, _, _ in pending:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            raise
        if self._durable:
            if created:  # a new ``sha256/ab`` directory: its name in ``sha256`` too
                parents[os.path.join(self.root, BLOB_ROOT)] = None
            _each(fsync_dir, list(parents))

    def put_stream(self, src: BinaryIO, size: int, path: str) -> BlobInfo:
        """Copy the open file ``src`` (``size`` bytes, at ``path``) into the store, hashing it
        as it is read."""
        from cairn.core import transfer
        from cairn.storage._base import BlobInfo

        hasher = new_hasher()
        tmp = self._tmp_path()
        written = 0
        try:
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_CLOEXEC, 0o644)
            try:
                # Reserving the space first lets the file system lay the file out in one go:
                # measured, it halves the cost of writing and flushing a 256 MiB blob.
                preallocate(out, size)
                buf = bytearray(CHUNK)
                view = memoryview(buf)
                fd = src.fileno()
                with transfer("storing", size, path) as advance:
                    while n := os.readv(fd, [buf]):
                        hasher.update(view[:n])
                        write_all(out, view[:n])
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

    def put_clone(self, src: BinaryIO, size: int) -> BlobInfo | None:
        """Clone ``src`` into the store and hash the clone (which no one else can change), or
        None when this file system cannot clone."""
        from cairn.core import transfer
        from cairn.storage._base import BlobInfo

        tmp = self._tmp_path()
        try:
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_CLOEXEC, 0o644)
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

    def take(self, path: str, digest: str, size: int) -> BlobInfo | None:
        """Move the verified file ``path`` in as blob ``digest`` (a rename); None when it is on
        another file system (the caller copies it)."""
        from cairn.storage._base import BlobInfo

        final = self.path_of(digest)
        if os.path.exists(final):
            os.unlink(path)
            return BlobInfo(digest, size)
        try:
            self._install(path, final)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            return None
        return BlobInfo(digest, size)

    def _tmp_path(self) -> str:
        return os.path.join(self.tmp, f"{os.urandom(16).hex()}.partial")

    def _settle(self, tmp: str, digest: str) -> None:
        """Make the complete file ``tmp`` blob ``digest``; when the store has it already, drop
        ``tmp`` and refresh the blob's age (gc spares young blobs)."""
        final = self.path_of(digest)
        if os.path.exists(final):
            os.unlink(tmp)
            touch(final)
        else:
            self._install(tmp, final)

    def _install(self, tmp: str, final: str) -> None:
        os.chmod(tmp, 0o444)
        parent = os.path.dirname(final)
        os.makedirs(parent, exist_ok=True)
        os.replace(tmp, final)  # same content if it raced another writer: harmless
        if self._durable:
            fsync_dir(parent)

    # -- reads ---------------------------------------------------------------------------------

    def _absent(self, digest: str) -> BlobNotFoundError:
        return location_withheld(
            BlobNotFoundError(f"blob {digest} is not in {self.root}"), self.root
        )

    def read(self, digest: str) -> bytes:
        try:
            with open(self.path_of(digest), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise self._absent(digest) from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path_of(digest), "rb")
        except FileNotFoundError:
            raise self._absent(digest) from None

    def read_range(self, digest: str, start: int, length: int) -> bytes:
        try:
            fd = os.open(self.path_of(digest), os.O_RDONLY | O_CLOEXEC)
        except FileNotFoundError:
            raise self._absent(digest) from None
        try:
            return pread_all(fd, length, start)
        finally:
            os.close(fd)

    def exists(self, digest: str) -> bool:
        return os.path.exists(self.path_of(digest))

    def size(self, digest: str) -> int | None:
        try:
            return os.stat(self.path_of(digest)).st_size
        except FileNotFoundError:
            return None

    def list(self) -> Iterator[BlobInfo]:
        from cairn.storage._base import BlobInfo

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

    # -- removal -------------------------------------------------------------------------------

    def delete(self, digests: Sequence[str]) -> int:
        removed = 0
        for d in digests:
            try:
                os.unlink(self.path_of(d))
                removed += 1
            except FileNotFoundError:
                pass
        return removed

    def remove_stale_temp(self, older_than: float) -> int:
        """Delete partial files older than ``older_than`` seconds (left by killed writers)."""
        removed = 0
        now = time.time()
        for entry in os.scandir(self.tmp):
            if not entry.name.endswith(".partial"):
                continue  # e.g. a server's upload spool (tmp/uploads), swept by its owner
            try:
                if now - entry.stat().st_mtime > older_than:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                pass
        return removed
