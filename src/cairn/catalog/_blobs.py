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
from typing import Any, BinaryIO

from sqlalchemy import delete, select

from cairn.catalog import _schema as s
from cairn.catalog._catalog import Catalog
from cairn.catalog._tx import Tx
from cairn.core import check_digest, digest_bytes
from cairn.errors import BlobNotFoundError, DigestMismatchError
from cairn.storage import SMALL_LIMIT, BlobInfo, BlobStore, check_range, put_verified_file

_BATCH = 5000

IndexRow = tuple[str, int, bytes | None]  # (digest, size, the bytes of a small blob or None)


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

    def _row(self, digest: str) -> tuple[int, bytes | None] | None:
        b = s.blobs.c
        q = select(b.size, b.data).where(b.digest == check_digest(digest))
        row = self.catalog.read(lambda tx: tx.conn.execute(q).first())
        return None if row is None else (int(row[0]), None if row[1] is None else bytes(row[1]))

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
        self.record([(info.digest, info.size, None)])
        return info

    # -- reads ---------------------------------------------------------------------------------

    def get(self, digest: str) -> bytes:
        row = self._row(digest)
        if row is None:
            raise BlobNotFoundError(f"blob {digest} is not in the store")
        if row[1] is None:
            return self.large.get(digest)
        if digest_bytes(row[1]) != digest:
            raise DigestMismatchError(f"blob {digest} is damaged: its content has another digest")
        return row[1]

    def open(self, digest: str) -> BinaryIO:
        row = self._row(digest)
        if row is None:
            raise BlobNotFoundError(f"blob {digest} is not in the store")
        if row[1] is None:
            return self.large.open(digest)
        return io.BytesIO(row[1])

    def get_range(self, digest: str, start: int, length: int) -> bytes:
        """A slice of a small blob's row, or a ranged read of the large store."""
        check_range(start, length)
        row = self._row(digest)
        if row is None:
            raise BlobNotFoundError(f"blob {digest} is not in the store")
        if row[1] is None:
            return self.large.get_range(digest, start, length)
        return row[1][start : start + length]

    def copy_to(self, digest: str, dest: str) -> None:
        row = self._row(digest)
        if row is None:
            raise BlobNotFoundError(f"blob {digest} is not in the store")
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
        return None if self._is_small(digest) else self.large.local_path(digest)

    def presigned_url(self, digest: str, start: int = 0, length: int | None = None) -> str | None:
        return None if self._is_small(digest) else self.large.presigned_url(digest, start, length)

    def presigned_gets(self, digests: Sequence[str]) -> dict[str, tuple[str, int]]:
        """Those kept in the object store (sizes from the index: one query, not one per blob);
        ``{}`` if the object store gives no presigned URLs."""
        out: dict[str, tuple[str, int]] = {}
        for d, n in self.sizes_many(digests).items():
            if n >= self.small_limit:
                url = self.large.presigned_url(d)
                if url is None:
                    return {}
                out[d] = (url, n)
        return out

    def _is_small(self, digest: str) -> bool:
        size = self.size(digest)
        return size is None or size < self.small_limit

    def remove_stale_temp(self, older_than: float) -> int:
        return self.large.remove_stale_temp(older_than)

    def take_file(self, path: str, digest: str) -> BlobInfo:
        if os.path.getsize(path) < self.small_limit:
            return put_verified_file(self, path, digest)
        info = self.large.take_file(path, digest)
        self.record([(info.digest, info.size, None)])
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
        for start in range(0, len(wanted), _BATCH):
            chunk = wanted[start : start + _BATCH]

            def fn(tx: Tx, chunk: list[str] = chunk) -> tuple[int, list[str]]:
                big = [
                    str(r[0])
                    for r in tx.conn.execute(
                        select(b.digest).where(b.digest.in_(chunk), b.data.is_(None))
                    )
                ]
                n = tx.conn.execute(delete(s.blobs).where(b.digest.in_(chunk))).rowcount
                return int(n), big

            n, big = self.catalog.write(fn)
            removed += n
            large.extend(big)
        if large:
            self.large.delete_many(large)
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
