"""CatalogBlobStore: a server's blobs, indexed in its catalog.

Blobs under ``small_limit`` bytes are rows of the ``blobs`` table (their bytes included), as the
embedded store keeps them in SQLite: a million 4 KiB files are a million rows in one database,
not a million object-store PUTs (each a request of some milliseconds, and billed). Larger blobs go
to the ``large`` store (S3) and get an index row without bytes, written once the object is
durable. Presence checks are then one query, not one request per blob.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from sqlalchemy import delete, select

from cairn.catalog import _schema as s
from cairn.catalog._catalog import Catalog
from cairn.catalog._tx import Tx
from cairn.core import check_digest, digest_bytes
from cairn.errors import BlobNotFoundError, DigestMismatchError
from cairn.storage import SMALL_LIMIT, BlobInfo, BlobStore, check_range, put_verified_file

if TYPE_CHECKING:
    from cairn.storage import S3BlobStore

_BATCH = 5000

IndexRow = tuple[str, int, bytes | None]  # (digest, size, the bytes of a small blob or None)
# A blob's index row as its reads need it: (size, the bytes of a small blob or None, the object
# store key of a large one when it is not the digest's: ``object_key``, migration 0015).
_Row = tuple[int, bytes | None, str | None]


def insert_index(tx: Tx, items: Sequence[IndexRow]) -> None:
    """Add index rows in ``tx``; existing rows are kept."""
    if not items:
        return
    now = time.time()
    if tx.dialect == "postgresql":
        _copy_index(tx, items, now)
        return
    rows = [
        {"digest": check_digest(d), "size": n, "stored_at": now, "data": data}
        for d, n, data in items
    ]
    tx.insert_ignore(s.blobs, rows)


_COPY_TYPES = {"digest": "varchar", "size": "int8", "stored_at": "float8", "data": "bytea"}


def _copy_index(tx: Tx, items: Sequence[IndexRow], now: float) -> None:
    """On PostgreSQL: the rows not indexed yet, in one ``COPY`` (``Tx.copy_new``; binary: a
    small blob's bytes go as they are), not an ``INSERT`` per row: 20,000 rows of 4 KiB (s1
    through a server on S3) cost the server 0.06 s of CPU instead of 0.38-0.49 s, and
    PostgreSQL 0.47-0.51 s instead of 0.76-0.91 s (measured, docs/design.md). A row another
    request indexed between the look-up and the ``COPY`` makes that batch go by an insert that
    keeps the rows there (one batch's cost, not the whole transaction's again, when many
    requests upload the same blobs at once)."""
    wanted = {check_digest(d): (n, data) for d, n, data in items}
    there = _indexed(tx, list(wanted))
    new = [(d, n, now, data) for d, (n, data) in sorted(wanted.items()) if d not in there]
    tx.copy_new(s.blobs, _COPY_TYPES, new)


def _indexed(tx: Tx, digests: list[str]) -> set[str]:
    """Those of ``digests`` the index has (in ``tx``)."""
    b = s.blobs.c
    return {str(r[0]) for r in tx.conn.execute(select(b.digest).where(tx.among(b.digest, digests)))}


class CatalogBlobStore:
    """A BlobStore whose small blobs and index live in the catalog, large blobs in ``large``."""

    def __init__(
        self, catalog: Catalog, large: BlobStore, *, small_limit: int = SMALL_LIMIT
    ) -> None:
        self.catalog = catalog
        self.large = large
        self.small_limit = small_limit

    @property
    def read_only(self) -> bool:
        return False

    # -- the index -----------------------------------------------------------------------------

    def record(self, items: Sequence[IndexRow]) -> None:
        """Add index rows ``(digest, size, data or None)``; existing rows are kept."""
        if items:
            self.catalog.write(lambda tx: insert_index(tx, items))

    def _present(self, chunk: list[str]) -> list[str]:
        b = s.blobs.c

        def fn(tx: Tx) -> list[str]:
            return [
                str(r[0])
                for r in tx.conn.execute(select(b.digest).where(tx.among(b.digest, chunk)))
            ]

        return self.catalog.read(fn)

    def _row(self, digest: str) -> _Row | None:
        b = s.blobs.c
        q = select(b.size, b.data, b.object_key).where(b.digest == check_digest(digest))
        row = self.catalog.read(lambda tx: tx.conn.execute(q).first())
        if row is None:
            return None
        return int(row[0]), None if row[1] is None else bytes(row[1]), row[2]

    def _found(self, digest: str) -> _Row:
        row = self._row(digest)
        if row is None:
            raise BlobNotFoundError(f"blob {digest} is not in the store")
        return row

    def _keyed(self) -> S3BlobStore:
        """The object store of blobs at keys of their own (only an S3 store writes them)."""
        from cairn.storage import S3BlobStore

        if not isinstance(self.large, S3BlobStore):
            raise BlobNotFoundError("a blob's index row names an object key, not in this store")
        return self.large

    def record_keyed(self, digest: str, size: int, key: str | None) -> str | None:
        """Index large blob ``digest`` as stored at ``key`` (relative to the object store's
        prefix, ``streamed/<upload id>``; None: the digest's key) unless the index has it
        already; the key the index names once this returns (None: the digest's). Two uploads
        of one blob racing: one row wins; the other's caller removes its own object."""
        b = s.blobs.c
        row = {"digest": check_digest(digest), "size": size, "stored_at": time.time()}
        row.update(data=None, object_key=key)

        def fn(tx: Tx) -> str | None:
            tx.insert_ignore(s.blobs, [row])
            q = select(b.object_key).where(b.digest == digest)
            return cast("str | None", tx.conn.execute(q).scalar_one())

        return self.catalog.write(fn)

    def indexed_keys(self, keys: Sequence[str]) -> set[str]:
        """Those of ``keys`` (relative to the object store's prefix) an index row names
        (``object_key``, indexed where not NULL)."""
        b = s.blobs.c
        found: set[str] = set()
        for start in range(0, len(keys), _BATCH):
            chunk = list(keys[start : start + _BATCH])

            def fn(tx: Tx, chunk: list[str] = chunk) -> list[Any]:
                return list(
                    tx.conn.execute(select(b.object_key).where(tx.among(b.object_key, chunk)))
                )

            found.update(str(r[0]) for r in self.catalog.read(fn))
        return found

    def _at(self, key: str) -> str:
        """The object store key of a row's ``object_key`` (stored relative to the prefix, so a
        store moved to another bucket or prefix reads the same)."""
        return self._keyed().prefix + key

    # -- writes --------------------------------------------------------------------------------

    def put(self, digest: str, data: bytes) -> None:
        self.put_many([(digest, data)])

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        self.record(self.store_many(items))

    def store_many(self, items: Sequence[tuple[str, bytes]]) -> list[IndexRow]:
        """Write the large ones of ``items`` not indexed yet to the large store (durable on
        return); the index rows ``items`` need, for ``record`` or a caller's transaction
        (``insert_index``), which MUST come after this returns. Nothing is indexed here."""
        small = [(d, len(b), bytes(b)) for d, b in items if len(b) < self.small_limit]
        large = [(d, b) for d, b in items if len(b) >= self.small_limit]
        rows: list[IndexRow] = list(small)
        if large:
            present = self.has_many(d for d, _ in large)
            todo = [(d, b) for d, b in large if d not in present]
            self.large.put_many(todo)
            rows += [(d, len(b), None) for d, b in todo]
        return rows

    def put_file(self, path: str, *, link: bool = False) -> BlobInfo:
        if os.path.getsize(path) < self.small_limit:
            with open(path, "rb") as f:
                data = f.read()
            digest = digest_bytes(data)
            self.record([(digest, len(data), data)])
            return BlobInfo(digest, len(data))
        info = self.large.put_file(path)
        self.record_keyed(info.digest, info.size, None)  # (the digest's key is shared: kept)
        return info

    # -- reads ---------------------------------------------------------------------------------

    def get(self, digest: str) -> bytes:
        row = self._found(digest)
        if row[1] is None:
            return (
                self.large.get(digest)
                if row[2] is None
                else self._keyed().get(digest, key=self._at(row[2]))
            )
        if digest_bytes(row[1]) != digest:
            raise DigestMismatchError(f"blob {digest} is damaged: its content has another digest")
        return row[1]

    def open(self, digest: str) -> BinaryIO:
        row = self._found(digest)
        if row[1] is None:
            return (
                self.large.open(digest)
                if row[2] is None
                else self._keyed().open(digest, key=self._at(row[2]))
            )
        return io.BytesIO(row[1])

    def get_range(self, digest: str, start: int, length: int) -> bytes:
        """A slice of a small blob's row, or a ranged read of the large store."""
        check_range(start, length)
        row = self._found(digest)
        if row[1] is None and row[2] is not None:
            return self._keyed().get_range(digest, start, length, key=self._at(row[2]))
        if row[1] is None:
            return self.large.get_range(digest, start, length)
        return row[1][start : start + length]

    def copy_to(self, digest: str, dest: str) -> None:
        row = self._found(digest)
        if row[1] is None and row[2] is not None:
            self._keyed().copy_to(digest, dest, key=self._at(row[2]))
            return
        if row[1] is None:
            self.large.copy_to(digest, dest)
            return
        data = self.get(digest)
        with open(dest, "wb") as f:
            f.write(data)

    def small_many(self, digests: Sequence[str]) -> dict[str, bytes]:
        """The bytes of those of ``digests`` kept in the catalog (one query), verified."""
        b = s.blobs.c
        wanted = list(dict.fromkeys(digests))

        def fn(tx: Tx) -> list[Any]:
            q = select(b.digest, b.data).where(tx.among(b.digest, wanted), b.data.is_not(None))
            return list(tx.conn.execute(q))

        out: dict[str, bytes] = {}
        for d, data in self.catalog.read(fn) if wanted else []:
            if digest_bytes(data) != d:
                raise DigestMismatchError(f"blob {d} is damaged: its content has another digest")
            out[str(d)] = bytes(data)
        return out

    def get_many(self, digests: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        """Small blobs many per query (``small_many``), the others from the object store."""
        wanted = list(dict.fromkeys(digests))
        for start in range(0, len(wanted), _BATCH):
            chunk = wanted[start : start + _BATCH]
            small = self.small_many(chunk)
            for d in chunk:
                found = small.get(d)
                yield d, found if found is not None else self.get(d)

    def indexed_sizes(self, digests: Sequence[str]) -> dict[str, int] | None:
        return self.sizes_many(digests)

    def local_path(self, digest: str) -> str | None:
        row = self._row(digest)
        if row is None or row[1] is not None or row[2] is not None:
            return None  # (a blob at a key of its own is an object, never a local file)
        return self.large.local_path(digest)

    def presigned_url(self, digest: str, start: int = 0, length: int | None = None) -> str | None:
        row = self._row(digest)
        if row is None or row[1] is not None:
            return None
        if row[2] is not None:
            return self._keyed().presigned_url(digest, start, length, key=self._at(row[2]))
        return self.large.presigned_url(digest, start, length)

    def presigned_gets(self, digests: Sequence[str]) -> dict[str, tuple[str, int]]:
        """Those kept in the object store (sizes and keys from the index: one query, not one
        per blob); ``{}`` if the object store gives no presigned URLs."""
        out: dict[str, tuple[str, int]] = {}
        for d, (n, key) in self._large_rows(digests).items():
            url = (
                self.large.presigned_url(d)
                if key is None
                else self._keyed().presigned_url(d, key=self._at(key))
            )
            if url is None:
                return {}
            out[d] = (url, n)
        return out

    def _large_rows(self, digests: Sequence[str]) -> dict[str, tuple[int, str | None]]:
        """Size and ``object_key`` of those of ``digests`` kept in the object store."""
        b = s.blobs.c
        wanted = list(dict.fromkeys(digests))
        out: dict[str, tuple[int, str | None]] = {}
        for start in range(0, len(wanted), _BATCH):
            chunk = wanted[start : start + _BATCH]

            def fn(tx: Tx, chunk: list[str] = chunk) -> list[Any]:
                q = select(b.digest, b.size, b.object_key).where(
                    tx.among(b.digest, chunk), b.data.is_(None)
                )
                return list(tx.conn.execute(q))

            out.update((str(d), (int(n), k)) for d, n, k in self.catalog.read(fn))
        return out

    def remove_stale_temp(self, older_than: float) -> int:
        return self.large.remove_stale_temp(older_than)

    def take_file(self, path: str, digest: str) -> BlobInfo:
        if os.path.getsize(path) < self.small_limit:
            return put_verified_file(self, path, digest)
        info = self.large.take_file(path, digest)
        self.record_keyed(info.digest, info.size, None)  # (the digest's key is shared: kept)
        return info

    def sizes_many(self, digests: Sequence[str]) -> dict[str, int]:
        """The sizes of those of ``digests`` in the index (one query per 5,000)."""
        b = s.blobs.c
        wanted = list(dict.fromkeys(digests))
        out: dict[str, int] = {}
        for start in range(0, len(wanted), _BATCH):
            chunk = wanted[start : start + _BATCH]

            def fn(tx: Tx, chunk: list[str] = chunk) -> list[Any]:
                return list(
                    tx.conn.execute(select(b.digest, b.size).where(tx.among(b.digest, chunk)))
                )

            out.update((str(d), int(n)) for d, n in self.catalog.read(fn))
        return out

    def has_many(self, digests: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(digests))
        found: set[str] = set()
        for start in range(0, len(wanted), _BATCH):
            chunk = wanted[start : start + _BATCH]
            found.update(self._present(chunk))
        return found

    def size(self, digest: str) -> int | None:
        row = self._row(digest)
        return None if row is None else row[0]

    def delete_many(self, digests: Iterable[str]) -> int:
        wanted = list(dict.fromkeys(digests))
        b = s.blobs.c
        removed = 0
        large: list[str] = []
        keyed: list[str] = []  # objects at keys of their own
        for start in range(0, len(wanted), _BATCH):
            chunk = wanted[start : start + _BATCH]

            def fn(tx: Tx, chunk: list[str] = chunk) -> tuple[int, list[Any]]:
                big = list(
                    tx.conn.execute(
                        select(b.digest, b.object_key).where(b.digest.in_(chunk), b.data.is_(None))
                    )
                )
                n = tx.conn.execute(delete(s.blobs).where(b.digest.in_(chunk))).rowcount
                return int(n), big

            n, big = self.catalog.write(fn)
            removed += n
            large.extend(str(d) for d, key in big if key is None)
            keyed.extend(str(key) for _, key in big if key is not None)
        if large:
            self.large.delete_many(large)
        if keyed:
            self._keyed().delete_keys([self._at(k) for k in keyed])
        return removed

    def list(self) -> Iterator[BlobInfo]:
        b = s.blobs.c
        rows = self.catalog.read(
            lambda tx: list(tx.conn.execute(select(b.digest, b.size, b.stored_at)))
        )
        for d, n, at in rows:
            yield BlobInfo(str(d), int(n), float(at))

    def close(self) -> None:
        self.large.close()

    def corrupt(self, digest: str, data: bytes) -> None:
        """Replace a small blob's bytes behind the store's back (for tests of verification)."""
        from sqlalchemy import update

        self.catalog.write(
            lambda tx: tx.conn.execute(
                update(s.blobs).where(s.blobs.c.digest == digest).values(data=data)
            )
        )
