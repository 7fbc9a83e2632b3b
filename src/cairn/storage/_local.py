"""Content-addressed blobs on local disk.

Layout under ``root`` (see docs/design.md, "Blobs"):

* ``sha256/ab/cdef...``: one read-only file per blob of ``small_limit`` bytes or more, written to
  ``tmp/`` first, flushed to disk, then renamed into place (``_local_files.py``);
* ``packs/NNNNNNNN.pack``: blobs under ``small_limit`` bytes, back to back (no header, no
  padding), so a small blob costs its size on disk; ``small.sqlite`` indexes them (table
  ``packed``: digest -> pack, offset, size, stored_at; table ``pack``: each pack's committed end
  and live bytes) (``_local_packs.py``). Creating a file costs more than writing 4 KiB on most
  file systems, and a 4 KiB row spills over SQLite's pages; appending to a pack costs one write
  and one flush for thousands of blobs, and exactly their bytes.

A writer appends under SQLite's write lock at the pack's committed end, flushes the pack, then
commits the index rows: a writer killed in between leaves bytes past the committed end that no
row refers to, and the next writer writes over them. gc deletes rows, then rewrites a pack whose
live bytes fell under half (``compact``) and removes the old one. Stores of the first format
(blob bytes in the ``blob`` table of ``small.sqlite``) are moved into packs when opened
(``upgrade``). Several processes may read and write the same store at once: files are renamed
atomically and SQLite serialises writers (a rollback journal, ``TRUNCATE``, not WAL: see
``Packs.db``; a writer waits up to a minute for the lock).

``LocalBlobStore`` is the ``BlobStore``: it sends each blob to the files or the packs by size.
The embedded store packs blobs under ``PACKED_LIMIT`` (1 MiB: image-sized blobs too, see
docs/design.md, "Image-sized blobs in packs"); a server's local store those under
``SMALL_LIMIT``. Reads look in the packs first, then the files, whatever the size: a blob written
as a file under another limit is found, and is not packed again (``put_many``).
"""

from __future__ import annotations

import io
import os
import time

from cairn._lazy import TYPE_CHECKING
from cairn.core import digest_bytes, digest_from_hasher, digest_raw, new_hasher
from cairn.errors import DigestMismatchError
from cairn.storage._hashing import CHUNK
from cairn.storage._local_files import BlobFiles
from cairn.storage._local_io import disk_full, store_error
from cairn.storage._local_packs import BATCH, Packs
from cairn.storage._location import location_withheld

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence
    from typing import BinaryIO

    from cairn.storage._base import BlobInfo

# A staging worker process imports this module to store what it reads (``sdk/_stage_worker.py``):
# what only reads, ``put_file`` or a transfer's progress need (``_base``'s dataclass and
# protocol, ``typing``; ~0.01-0.02 s of its start) is imported where it is used.

SMALL_LIMIT = 128 * 1024
# The embedded store's limit: a blob file costs a file's creation, flush, rename and directory
# flush, several times the CPU of its 200 KiB in a pack (5,000 image-sized blobs: ~1.5 s of
# CPU as files, docs/design.md); larger blobs are few, and files keep them cheap to read whole.
PACKED_LIMIT = 1 << 20


class LocalBlobStore:
    """A BlobStore on a local directory (the embedded store's, or a server's)."""

    def __init__(self, root: str, *, small_limit: int = SMALL_LIMIT, durable: bool = True) -> None:
        self.root = os.path.abspath(root)
        self.small_limit = small_limit
        self.durable = durable  # False only for tests and throwaway stores: no fsync
        self.files = BlobFiles(self.root, durable=durable)
        self.packs = Packs(self.root, durable=durable)

    @property
    def read_only(self) -> bool:
        return False

    def path_of(self, digest: str) -> str:
        return self.files.path_of(digest)

    # -- writes --------------------------------------------------------------------------------

    def put(self, digest: str, data: bytes) -> None:
        self.put_many([(digest, data)])

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        now = time.time()
        # One pass, and a blob under both limits is packed without asking whether it is a file
        # (a stat for each blob between them, twice before).
        packed_below = min(SMALL_LIMIT, self.small_limit)
        small: list[tuple[bytes, bytes, float]] = []
        large: list[tuple[str, bytes]] = []
        for d, b in items:
            if len(b) < packed_below or not self._as_file(d, len(b)):
                small.append((digest_raw(d), b, now))
            else:
                large.append((d, b))
        if large:
            try:
                self.files.put_many(large)
            except OSError as exc:
                if disk_full(exc):
                    raise store_error(self.root, "could not store blobs", exc) from None
                raise
        if not small:
            return
        self.packs.put(small)

    def _as_file(self, digest: str, size: int) -> bool:
        """Whether a blob of ``size`` bytes is (or stays) a file: at the limit or over, or
        between ``SMALL_LIMIT`` and a larger limit and already a file (stored under the
        smaller limit before): then its file is kept (touched), not packed again."""
        if size >= self.small_limit:
            return True
        return size >= SMALL_LIMIT and self.files.exists(digest)

    def put_file(self, path: str, *, link: bool = False) -> BlobInfo:
        """Store a file's content. With ``link`` (``policy="immutable"``), a large file is
        cloned into the store where the file system offers copy-on-write clones (btrfs, XFS,
        ...): no bytes are copied, and a later change of the user's file cannot reach the blob.
        Elsewhere it is copied. It is never hard-linked: the user's file would *be* the blob, and
        writing over it (``torch.save`` to the same path) would change stored content."""
        try:
            return self._put_file(path, link)
        except OSError as exc:
            if disk_full(exc):
                raise store_error(self.root, f"could not store {path}", exc) from None
            raise

    def _put_file(self, path: str, link: bool) -> BlobInfo:
        with open(path, "rb") as src:
            size = os.fstat(src.fileno()).st_size
            if link and size >= self.small_limit:
                cloned = self.files.put_clone(src, size)
                if cloned is not None:
                    return cloned
            if size < self.small_limit:
                from cairn.storage._base import BlobInfo

                data = src.read()
                digest = digest_bytes(data)
                self.put_many([(digest, data)])
                return BlobInfo(digest, len(data))
            return self.files.put_stream(src, size, path)

    def take_file(self, path: str, digest: str) -> BlobInfo:
        """A large file on the store's file system (e.g. under ``root/tmp``) is moved in as
        blob ``digest`` (a rename, no copy); a small one, or one elsewhere, is copied (into a
        pack). The caller MUST have verified the file's content against ``digest``."""
        from cairn.storage._base import put_verified_file

        size = os.path.getsize(path)
        if size < self.small_limit:
            return put_verified_file(self, path, digest)
        taken = self.files.take(path, digest, size)
        if taken is None:
            return put_verified_file(self, path, digest)  # another file system: copied
        return taken

    # -- reads ---------------------------------------------------------------------------------

    def small(self, digest: str) -> bytes | None:
        """A small blob's bytes (verified), or None if it is absent or not a small blob."""
        data = self._small(digest)
        if data is not None and digest_bytes(data) != digest:
            raise self._damaged(digest)
        return data

    def small_many(self, digests: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for d in dict.fromkeys(digests):
            data = self.small(d)
            if data is not None:
                found[d] = data
        return found

    def indexed_sizes(self, digests: Sequence[str]) -> dict[str, int] | None:
        return None

    def local_path(self, digest: str) -> str | None:
        return self.path_of(digest) if self.files.exists(digest) else None

    def presigned_url(self, digest: str, start: int = 0, length: int | None = None) -> str | None:
        return None

    def presigned_gets(self, digests: Sequence[str]) -> dict[str, tuple[str, int]]:
        return {}

    def _small(self, digest: str) -> bytes | None:
        return self.packs.read(digest_raw(digest), 0, None)

    def _damaged(self, digest: str, why: str = "") -> DigestMismatchError:
        err = DigestMismatchError(f"blob {digest} in {self.root} is damaged{why}")
        return location_withheld(err, self.root)

    def get(self, digest: str) -> bytes:
        data = self._small(digest)
        if data is None:
            data = self.files.read(digest)
        if digest_bytes(data) != digest:
            raise self._damaged(
                digest,
                ": its content has another digest; run `cairn verify` to find every damaged blob",
            )
        return data

    def open(self, digest: str) -> BinaryIO:
        data = self._small(digest)
        if data is not None:
            return io.BytesIO(data)
        return self.files.open(digest)

    def get_range(self, digest: str, start: int, length: int) -> bytes:
        """Read the range in place: ``pread`` of the pack or of the blob file
        (no copy of the blob, no read of the rest of it)."""
        from cairn.storage._base import check_range

        check_range(start, length)
        if length == 0:
            return b""
        small = self.packs.read(digest_raw(digest), start, length)
        if small is not None:
            return small
        return self.files.read_range(digest, start, length)

    def copy_to(self, digest: str, dest: str) -> None:
        data = self._small(digest)
        if data is not None:
            if digest_bytes(data) != digest:
                raise self._damaged(digest)
            with open(dest, "wb") as f:
                f.write(data)
            return
        from cairn.core import transfer

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
            raise self._damaged(digest, ": its content has another digest")

    def get_many(self, digests: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        """``(digest, content)`` of each blob, small ones looked up many per query; each
        verified."""
        wanted = list(dict.fromkeys(digests))
        for start in range(0, len(wanted), BATCH):
            chunk = wanted[start : start + BATCH]
            for digest, data in zip(chunk, self.packs.read_many(chunk), strict=True):
                if data is None:
                    yield digest, self.get(digest)  # large, moved, first-format, or absent
                elif digest_bytes(data) != digest:
                    raise self._damaged(digest)
                else:
                    yield digest, data

    def has_many(self, digests: Iterable[str]) -> set[str]:
        by_raw = {digest_raw(d): d for d in digests}
        found = {by_raw[raw] for raw in self.packs.present(list(by_raw))}
        found.update(d for d in by_raw.values() if d not in found and self.files.exists(d))
        return found

    def size(self, digest: str) -> int | None:
        packed = self.packs.size(digest_raw(digest))
        return packed if packed is not None else self.files.size(digest)

    def list(self) -> Iterator[BlobInfo]:
        from cairn.storage._base import BlobInfo

        for digest, size, stored_at in self.packs.entries():
            yield BlobInfo(digest, size, stored_at)
        yield from self.files.list()

    # -- removal -------------------------------------------------------------------------------

    def delete_many(self, digests: Iterable[str]) -> int:
        """Delete blobs. Large files are unlinked first: on a full disk that frees the space
        the index then needs to record its own deletions. Then packs whose live bytes fell
        under half are rewritten (``compact``), which gives the deleted blobs' bytes back."""
        wanted = list(dict.fromkeys(digests))
        removed = self.files.delete(wanted)
        removed += self.packs.delete([digest_raw(d) for d in wanted])
        self.compact()
        return removed

    def compact(self) -> int:
        """Rewrite packs mostly of deleted blobs and remove orphan pack files (``Packs.compact``);
        returns the bytes given back."""
        return self.packs.compact()

    def upgrade(self) -> int:
        """Move a first-format store's small blobs into packs (``Packs.upgrade``); returns how
        many were moved. Runs when the store is opened."""
        return self.packs.upgrade()

    def remove_stale_temp(self, older_than: float) -> int:
        """Delete partial files older than ``older_than`` seconds (left by killed writers)."""
        return self.files.remove_stale_temp(older_than)

    def close(self) -> None:
        self.packs.close()
