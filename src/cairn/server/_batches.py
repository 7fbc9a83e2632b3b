"""Blobs many per request, both ways (``application/vnd.cairn.blobs``, see ``cairn.service._wire``).

* **In** (``POST /blobs/batch``): the body is read as it arrives; every few MiB of whole blobs
  are hashed (off the event loop) and stored together, so a blob is stored only once its content
  is verified. The catalog's part (the index rows of an S3 store's blobs, this key's uploads) is
  one transaction at the end of the request (``BatchUpload``). One blob with other content
  refuses the request (422); those verified before it are stored and indexed but not recorded as
  this key's uploads, so a presence check still reports them missing to it.
* **Out** (``POST /blobs/fetch``): blobs of up to ``FETCH_BLOB_LIMIT`` bytes, in the order asked,
  until ``FETCH_BYTES``; read from the store in parallel (an object store answers several GETs at
  once) and streamed, each verified by the store's ``get``. Larger blobs, absent ones and those
  the store cannot read are left out; the client asks again for what follows the last blob it
  got, and fetches what was left out one by one (where a lost blob gets its own clear error).
* **Straight from the object store** (``POST /blobs/urls``, S3 stores): presigned GETs of the
  blobs kept in S3, for the client to fetch many at a time itself (and verify): the server signs
  URLs and moves no bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from cairn.catalog import CatalogBlobStore, Uploads
from cairn.errors import BlobNotFoundError, DigestMismatchError
from cairn.service import BatchReader, PackedDigests, packed_chunks, verify_blobs
from cairn.storage import BlobStore

URL_DIGESTS = 4096  # presigned URLs asked at once

STORE_GROUP_BYTES = 4 << 20  # verified and stored together, while the rest still arrives
# ... or this many blobs, whichever comes first: 4 MiB of tiny blobs are 90,000 of them, ~30 MiB
# as Python objects (two groups at a time per request, four requests of a first log at once).
STORE_GROUP_BLOBS = 10_000
FETCH_BLOB_LIMIT = 8 << 20  # larger blobs are fetched one by one (in ranges)
FETCH_BYTES = 16 << 20  # one answer
FETCH_PIECE = 1 << 20  # sent at a time (or one larger blob)
FETCH_DIGESTS = 4096  # asked at once
_READERS = 8


class BatchUpload:
    """The blobs of one batch request of ``owner``: stored group by group as they are verified
    (``put``, in a worker thread), recorded at the end in one catalog transaction (``finish``):
    the index rows of blobs an S3 store's ``index`` keeps, and the key's uploads.

    ``index``: the catalog's index over an S3 store (``Backend.catalog_blobs``), which stores a
    group and gives its rows for ``finish``; None: ``blobs`` (a local store) stores it alone."""

    def __init__(
        self, blobs: BlobStore, index: CatalogBlobStore | None, uploads: Uploads, owner: str
    ) -> None:
        self.blobs = blobs
        self.index = index
        self.uploads = uploads
        self.owner = owner
        # The digests stored, packed in a file: a request of 8 MiB of tiny blobs names 190,000
        # of them (as strings, and rows to insert, ~60 MiB of a server's memory per request).
        self.digests = PackedDigests()
        self.count = 0
        self.rows: list[tuple[str, int, bytes | None]] = []

    def put(self, group: list[tuple[bytes, bytes]]) -> None:
        items = verify_blobs(group)
        if self.index is not None:
            self.rows += self.index.store_many(items)  # durable; indexed by ``finish``
        else:
            self.blobs.put_many(items)
        self.digests.extend(d for d, _ in items)
        self.count += len(items)

    def finish(self, *, whole: bool) -> None:
        """Record what was stored: as the key's uploads only if the request arrived ``whole``."""
        try:
            owner = self.owner if whole else None
            self.uploads.record_uploaded(owner, self.digests, index=self.rows)
        finally:
            self.digests.close()


async def receive_batch(request: Request, batch: BatchUpload, max_blob: int) -> int:
    """Store the blobs of a batch body as they arrive, each verified (``batch.put``: one group
    is verified and stored in a worker thread while the next arrives), then record them in one
    transaction; how many there were."""
    reader = BatchReader(max_blob)
    group: list[tuple[bytes, bytes]] = []
    size = 0
    pending: asyncio.Future[None] | None = None
    try:
        async for chunk in request.stream():
            for item in reader.feed(chunk):
                group.append(item)
                size += len(item[1]) + 40
            if size >= STORE_GROUP_BYTES or len(group) >= STORE_GROUP_BLOBS:
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(run_in_threadpool(batch.put, group))
                group, size = [], 0
        reader.end()
        if pending is not None:
            await pending
            pending = None
        if group:
            await run_in_threadpool(batch.put, group)
    except BaseException:
        if pending is not None:  # the request failed meanwhile: let the group finish, quietly
            await asyncio.wait([pending])
            if not pending.cancelled():
                pending.exception()
        try:  # what was stored is indexed, not recorded as the key's uploads
            await run_in_threadpool(batch.finish, whole=False)
        except Exception:  # noqa: BLE001 - the request's own error is the one to answer
            pass
        raise
    await run_in_threadpool(batch.finish, whole=True)
    return batch.count


def fetch_plan(blobs: BlobStore, digests: Sequence[str]) -> list[str]:
    """Which of ``digests`` (readable by the key, in the order asked) one answer carries."""
    # A store's index answers every size in one query; another store is asked blob by blob,
    # only until the answer is full.
    sizes = blobs.indexed_sizes(digests)
    chosen: list[str] = []
    total = 0
    for d in digests:
        n = sizes.get(d) if sizes is not None else blobs.size(d)
        if n is None or n > FETCH_BLOB_LIMIT:
            continue
        if chosen and total + n > FETCH_BYTES:
            break
        chosen.append(d)
        total += n
    return chosen


def fetch_body(blobs: BlobStore, chosen: Sequence[str]) -> Iterator[bytes]:
    """The batch of ``chosen``, read in parallel, sent in order as they come, in pieces of
    about ``FETCH_PIECE`` bytes: each piece the app sends is a hop from a worker thread to the
    event loop and a write, which per blob (two pieces each) cost the server ~0.25 ms, 5 s of
    CPU for 20,000 small blobs."""
    small = blobs.small_many(chosen)  # one query for those the store keeps small

    def read(d: str) -> bytes | None:
        found = small.get(d)
        if found is not None:
            return found
        try:
            return blobs.get(d)  # verified
        except (BlobNotFoundError, DigestMismatchError):
            return None  # left out: fetched alone, it gets its own error

    if len(chosen) - len(small) <= 1:
        yield from _pieces(chosen, map(read, chosen))
        return
    with ThreadPoolExecutor(_READERS) as pool:
        yield from _pieces(chosen, pool.map(read, chosen))


def _pieces(chosen: Sequence[str], found: Iterator[bytes | None]) -> Iterator[bytes]:
    """Each blob of ``found`` with its head, in pieces of about ``FETCH_PIECE`` (a blob that
    large goes alone, not copied)."""
    came = ((d, data) for d, data in zip(chosen, found, strict=True) if data is not None)
    return packed_chunks(came, FETCH_PIECE)
