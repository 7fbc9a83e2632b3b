"""The server's uploads under way (``uploads``, ``upload_parts``) and who uploaded which blob
(``blob_uploads``): the repository ``cairn.server._transfers`` calls, never SQL of its own."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update

from cairn.catalog import _schema as s
from cairn.catalog._access import _BATCH

if TYPE_CHECKING:
    from cairn.catalog._blobs import IndexRow
    from cairn.catalog._catalog import Catalog
    from cairn.catalog._tx import Tx


@dataclass(frozen=True, slots=True)
class UploadRow:
    """An upload under way: who, which blob, the part size and the transfer's handle."""

    id: str
    owner: str
    digest: str
    size: int
    part_size: int
    ref: str
    active_at: float | None = None  # when a stream last sent it a part (None: none is on it)

    def live(self, since: float) -> bool:
        """Whether a stream was on the upload at or after ``since``."""
        return self.active_at is not None and self.active_at >= since


@dataclass(frozen=True, slots=True)
class PartRecord:
    """A part of a streamed upload the object store has: the SHA-256 of the blob up to the
    part's end (``prefix_sha256``), the part's CRC32 and the ETag the store gave it."""

    prefix_sha256: bytes
    crc32: bytes
    etag: str


_UPLOAD_TYPES = {"user_name": "varchar", "digest": "varchar", "created_at": "float8"}


class Uploads:
    """The ``uploads`` table (large blobs under way) and ``blob_uploads`` (who uploaded what)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def insert(self, up: UploadRow) -> None:
        self.catalog.write(
            lambda tx: tx.conn.execute(
                s.uploads.insert().values(
                    id=up.id,
                    user_name=up.owner,
                    digest=up.digest,
                    size=up.size,
                    part_size=up.part_size,
                    backend_ref=up.ref,
                    created_at=time.time(),
                )
            )
        )

    def get(self, upload_id: str) -> UploadRow | None:
        u = s.uploads.c
        row = self.catalog.read(
            lambda tx: tx.conn.execute(select(s.uploads).where(u.id == upload_id)).first()
        )
        return None if row is None else _upload_row(row)

    def delete(self, upload_id: str) -> None:
        """Forget an upload and the parts recorded of it."""

        def fn(tx: Tx) -> None:
            tx.conn.execute(delete(s.upload_parts).where(s.upload_parts.c.upload_id == upload_id))
            tx.conn.execute(delete(s.uploads).where(s.uploads.c.id == upload_id))

        self.catalog.write(fn)

    def name(
        self, upload_id: str, digest: str, ref: str | None, *, taking_up: str | None = None
    ) -> bool:
        """Name the blob of an upload begun without its digest (its ``digest`` is ``''``):
        ``digest`` and the backend's ``ref`` (None: the one it has) are written in; with ``taking_up``, that earlier
        upload of the same blob is taken over in the same transaction (its row goes first, and
        only one naming can take it: its part records move to this upload). False, and nothing
        changed, when the upload is gone or named already, or the earlier one was taken."""
        u, p = s.uploads.c, s.upload_parts.c

        def fn(tx: Tx) -> bool:
            if taking_up is not None:
                taken = tx.conn.execute(delete(s.uploads).where(u.id == taking_up)).rowcount
                if taken != 1:
                    return False  # another naming took it (or it went): nothing changed
            values = {"digest": digest} if ref is None else {"digest": digest, "backend_ref": ref}
            named = tx.conn.execute(
                update(s.uploads).where(u.id == upload_id, u.digest == "").values(**values)
            ).rowcount
            if not named:
                raise _NotNamed()  # the earlier row's delete is rolled back with it
            if taking_up is not None:
                tx.conn.execute(
                    update(s.upload_parts)
                    .where(p.upload_id == taking_up)
                    .values(upload_id=upload_id)
                )
            return True

        try:
            return bool(self.catalog.write(fn))
        except _NotNamed:
            return False

    def activity(self, upload_id: str, live: bool) -> None:
        """A stream is on the upload now (``live``: ``active_at`` is now), or no longer."""
        u = s.uploads.c
        q = update(s.uploads).where(u.id == upload_id)
        stamp = time.time() if live else None
        self.catalog.write(lambda tx: tx.conn.execute(q.values(active_at=stamp)))

    def record_part(
        self, upload_id: str, number: int, prefix_sha256: bytes, crc32: bytes, etag: str
    ) -> None:
        """Part ``number`` of a streamed upload is in the object store (``etag``): the SHA-256
        of the blob up to its end and its CRC32 (a later attempt reuses the part when its own
        bytes up to there hash the same). Replaces an earlier attempt's record of the part.
        Nothing is recorded of an upload gone (aborted by a naming that found the blob stored or
        an earlier upload to resume, or swept)."""
        values = {"prefix_sha256": prefix_sha256, "crc32": crc32, "etag": etag}

        def fn(tx: Tx) -> None:
            u = s.uploads.c  # its stream is live (``activity``); an upload gone records nothing
            live = update(s.uploads).where(u.id == upload_id).values(active_at=time.time())
            if not tx.conn.execute(live).rowcount:
                return
            ins = tx.upsert(s.upload_parts).values(upload_id=upload_id, number=number, **values)
            tx.conn.execute(
                ins.on_conflict_do_update(index_elements=["upload_id", "number"], set_=values)
            )

        self.catalog.write(fn)

    def drop_orphan_parts(self) -> int:
        """Forget the part records of uploads no longer under way: a part thread that recorded
        its part after the upload was swept or completed by another request, or an older server
        that forgot an upload without its parts. Returns how many went."""
        p, u = s.upload_parts.c, s.uploads.c
        q = delete(s.upload_parts).where(p.upload_id.not_in(select(u.id)))
        return int(self.catalog.write(lambda tx: tx.conn.execute(q).rowcount))

    def parts(self, upload_id: str) -> dict[int, PartRecord]:
        """The parts recorded of an upload, by number."""
        p = s.upload_parts.c
        q = select(p.number, p.prefix_sha256, p.crc32, p.etag).where(p.upload_id == upload_id)
        rows = self.catalog.read(lambda tx: tx.conn.execute(q).all())
        return {int(r[0]): PartRecord(bytes(r[1]), bytes(r[2]), str(r[3])) for r in rows}

    def begun_before(self, cutoff: float) -> list[UploadRow]:
        u = s.uploads.c
        rows = self.catalog.read(
            lambda tx: tx.conn.execute(select(s.uploads).where(u.created_at < cutoff)).all()
        )
        return [_upload_row(r) for r in rows]

    def latest_for(self, owner: str, digest: str, size: int) -> UploadRow | None:
        """``owner``'s newest upload under way of this blob (to take it up again), if any."""
        u = s.uploads.c
        q = (
            select(s.uploads)
            .where(u.user_name == owner, u.digest == digest, u.size == size)
            .order_by(u.created_at.desc())
            .limit(1)
        )
        row = self.catalog.read(lambda tx: tx.conn.execute(q).first())
        return None if row is None else _upload_row(row)

    def ids(self) -> set[str]:
        u = s.uploads.c
        return set(self.catalog.read(lambda tx: [r[0] for r in tx.conn.execute(select(u.id))]))

    def record_uploaded(
        self, owner: str | None, digests: Iterable[str], *, index: Sequence[IndexRow] = ()
    ) -> None:
        """``owner`` uploaded these blobs and the server verified them; with ``index``, the
        rows a ``CatalogBlobStore.store_many`` left to record go in the same transaction (one
        per batch of blobs). ``owner`` None: only the index rows (a batch that failed half-way
        is not recorded as its key's uploads). ``digests`` are read ``_BATCH`` at a time (a
        request of tiny blobs names 190,000), each time the transaction runs."""
        if owner is None and not index:
            return

        # Imported here: the blob index's module needs the catalog, which needs this module.
        from cairn.catalog._blobs import insert_index

        def fn(tx: Tx) -> None:
            insert_index(tx, index)
            if owner is None:
                return
            now = time.time()
            them = iter(digests)
            while batch := list(itertools.islice(them, _BATCH)):
                # In key order (``BlobGrants.add_readable``); new rows as a rule (the client
                # sends what the key lacks): ``copy_new``.
                rows = [(owner, d, now) for d in sorted(set(batch))]
                tx.copy_new(s.blob_uploads, _UPLOAD_TYPES, rows)

        self.catalog.write(fn)


class _NotNamed(Exception):
    """``Uploads.name``: the upload is gone or named already (its transaction rolls back)."""


def _upload_row(row: object) -> UploadRow:
    return UploadRow(
        id=str(row.id),  # type: ignore[attr-defined]
        owner=str(row.user_name),  # type: ignore[attr-defined]
        digest=str(row.digest),  # type: ignore[attr-defined]
        size=int(row.size),  # type: ignore[attr-defined]
        part_size=int(row.part_size),  # type: ignore[attr-defined]
        ref=str(row.backend_ref),  # type: ignore[attr-defined]
        active_at=row.active_at,  # type: ignore[attr-defined]
    )
