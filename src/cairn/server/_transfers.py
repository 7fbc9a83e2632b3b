"""Uploads of large blobs: in parts through the server, or straight to S3 by presigned URL.

Either way an upload is a row of the catalog's ``uploads`` table, so any server (or the same one
after a restart) can take it up, and it ends with ``complete``: the server verifies the content
against the digest before the blob may be used, and refuses (and forgets) it otherwise.

* **Parts** (local-disk stores): the client sends parts of ``part_size`` bytes in any order, several
  at a time; each is written at its offset into one spool file next to the store and marked done
  once written, so an interrupted upload resumes with the parts still missing. ``complete``
  hashes the file while it makes it durable (one fsync) and moves it into the store (a rename).
* **Streamed** (S3 stores, from ``PARTS_FROM``, clients that offer ``stream``): an S3 multipart
  upload at the blob's own key, fed by one request that the server hashes as it arrives and
  uploads part by part (``_stream_upload.py``): verified without reading anything back. Such an
  upload may be begun before the client has the digest (``begin`` with None: it hashes while it
  sends; the parts go at once to a key of the upload's own, which the blob's index row names);
  ``name`` then names the blob, and answers whether the key has it already.
* **Presigned parts** (S3 stores, from ``PARTS_FROM``, other clients): the same multipart
  upload; the client PUTs each part by a URL bound to the part's SHA-256. ``complete`` completes
  it only where no object is yet (``If-None-Match: *``) and verifies the whole (read back, as S3
  keeps only the parts' SHA-256) before the catalog records it (content that fails is deleted).
* **Presigned** (S3 stores, smaller blobs): the client PUTs the file to a staging key with the
  signed ``x-amz-checksum-sha256`` header (S3 refuses other content); ``complete`` checks the
  object against the digest (re-reading it where the store reports no checksum) and copies it,
  inside the object store, to the blob's key.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from cairn.catalog import Catalog, CatalogBlobStore, Uploads
from cairn.core import check_digest
from cairn.errors import (
    CommError,
    DigestMismatchError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from cairn.server._stream_upload import StreamSink, drop_marks
from cairn.server._transfers_streamed import LIVE_FOR, UNNAMED_ONLY, Streamed
from cairn.server._upload_parts import (
    STREAM_REF,
    PartWriter,
    Upload,
    held_spool,
    open_for_part,
    upload_of,
)
from cairn.storage import BlobStore, S3BlobStore, checksum_b64, hash_stream

PART_SIZE = 32 << 20
# S3 stores take blobs from 8 MiB (or 4 parts) in parts, at the blob's own key (no staging copy);
# smaller ones in one presigned PUT to a staging key.
PARTS_FROM = 8 << 20
# A streamed upload's parts: the server holds a few at a time. 8 MiB (boto3's own) stays under
# the allocator's mmap threshold, where 32 MiB buffers cost page faults on each side.
STREAM_PART_SIZE = 8 << 20
MAX_PARTS = 10_000
PRESIGN_SECONDS = 3600


UPLOAD_MAX_AGE = 24 * 3600.0  # an upload not completed after this long is abandoned


@dataclass(frozen=True, slots=True)
class ObjectStore:
    """A server's S3 store, which takes uploads presigned: the bucket (``s3``) and the catalog's
    index over it (``index``, the server's ``CatalogBlobStore``), which records a blob once its
    upload is verified."""

    s3: S3BlobStore
    index: CatalogBlobStore


class Transfers:
    """The server's side of uploads in parts and presigned uploads."""

    def __init__(
        self,
        catalog: Catalog,
        blobs: BlobStore,
        spool: str,
        *,
        object_store: ObjectStore | None = None,
        part_size: int = PART_SIZE,
        upload_max_age: float = UPLOAD_MAX_AGE,
    ):
        """``object_store``: the S3 store under ``blobs``, which takes uploads presigned; None:
        uploads come in parts to ``spool`` (on the store's file system for a local store, so a
        finished upload is moved in, never copied: ``BlobStore.take_file``)."""
        self.rows = Uploads(catalog)
        self.blobs = blobs
        self.part_size = part_size
        self.object_store = object_store
        self.s3 = None if object_store is None else object_store.s3
        self.spool = spool
        os.makedirs(self.spool, exist_ok=True)
        self.max_age = upload_max_age
        self._last_sweep = time.monotonic()
        # Uploads streamed through the server (S3 stores): begun with or before the digest.
        self.streamed = None if object_store is None else Streamed(self, object_store)

    @property
    def presigned(self) -> bool:
        return self.s3 is not None

    # -- the uploads table -------------------------------------------------------------------

    def load(self, user: str, upload_id: str) -> Upload:
        row = self.rows.get(upload_id)
        if row is None:
            raise NotFoundError(f"no upload {upload_id!r} (completed, abandoned or never begun)")
        if row.owner != user:
            raise PermissionDeniedError(f"upload {upload_id!r} belongs to another key")
        return upload_of(row)

    def forget(self, upload_id: str) -> None:
        self.rows.delete(upload_id)

    def _paths(self, up: Upload) -> tuple[str, str]:
        base = os.path.join(self.spool, up.id)
        return base + ".partial", base + ".parts"

    # -- the protocol ---------------------------------------------------------------------------

    def begin(
        self, user: str, digest: str | None, size: int, modes: Sequence[str] = ()
    ) -> dict[str, Any]:
        """Begin (or take up) an upload. ``modes``: what the client can do besides parts and
        presigned PUTs (``stream``: send the whole blob in one request, on S3 stores).
        ``digest`` None: a streamed upload begun before its digest (``name`` names it)."""
        if not isinstance(size, int) or size < 0:
            raise ValidationError("size must be a non-negative integer")
        if digest is None:
            if self.streamed is None:
                raise ValidationError(UNNAMED_ONLY)
            return self.streamed.begin_unnamed(user, size, modes)
        check_digest(digest)
        if self.s3 is None and -(-size // self.part_size) > MAX_PARTS:
            raise ValidationError(f"blob too large: at most {MAX_PARTS} parts of {self.part_size}")
        self.sweep_now_and_then()
        stream = "stream" in modes and self.s3 is not None
        part_size = self._part_size(size, stream)
        kept = self._resumable(user, digest, size, stream, part_size)
        if kept is not None:
            return kept
        upload_id = secrets.token_hex(16)
        ref = f"{self.s3.prefix}uploads/{upload_id}" if self.s3 is not None else upload_id
        if self.s3 is not None and size >= min(4 * self.part_size, PARTS_FROM):
            # In parts: S3 keeps the parts that arrived, so the upload can resume. At the blob's
            # own key (a multipart upload is invisible until the server completes it, and then
            # only where no object is yet): no copy from a staging key afterwards.
            ref = self.multipart(digest, stream)
        up = Upload(upload_id, user, digest, size, part_size, ref)

        if self.s3 is None:
            data, parts = self._paths(up)
            # Empty: the file grows as parts arrive, never to a size the client only declared
            # (a sparse file of 5 TiB would fill the disk as soon as it is written in order).
            open(data, "wb").close()
            os.makedirs(parts, exist_ok=True)
        self.rows.insert(up)
        return self.describe(up, new=True)

    def multipart(self, digest: str, stream: bool) -> str:
        """Begin an S3 multipart upload at the blob's key; the upload's ``ref``."""
        assert self.s3 is not None
        return self.multipart_at(self.s3.key_of(digest), stream)

    def multipart_at(self, key: str, stream: bool) -> str:
        """Begin an S3 multipart upload at ``key``; the upload's ``ref``."""
        assert self.s3 is not None
        try:
            # Parts streamed through the server carry a CRC32 (it hashed them already);
            # presigned ones the SHA-256 their URL is bound to.
            made = self.s3.client.create_multipart_upload(
                Bucket=self.s3.bucket, Key=key, ChecksumAlgorithm="CRC32" if stream else "SHA256"
            )
        except Exception as exc:  # noqa: BLE001 - translated
            raise self.s3.translate(exc) from None
        return f"{key}\n{made['UploadId']}" + (STREAM_REF if stream else "")

    def stream_part_size(self, size: int) -> int:
        return self._part_size(size, True)

    def _part_size(self, size: int, stream: bool) -> int:
        """Parts of a streamed upload: small ones, larger only as S3's 10,000 parts need."""
        if not stream:
            return self.part_size
        least = -(-size // MAX_PARTS)
        return max(min(self.part_size, STREAM_PART_SIZE), -(-least // (1 << 20)) << 20)

    def _resumable(
        self, user: str, digest: str, size: int, stream: bool, part_size: int
    ) -> dict[str, Any] | None:
        """This key's open upload of the same blob, with the parts it kept (a client killed
        mid-upload takes it up again), or None. One whose parts are gone is forgotten."""
        up = self.earlier(user, digest, size, stream, part_size)
        if up is None:
            return None
        try:
            return self.describe(up)
        except CommError:  # the object store no longer has the multipart upload
            self.forget(up.id)
            return None

    def earlier(
        self, user: str, digest: str, size: int, stream: bool, part_size: int
    ) -> Upload | None:
        """This key's newest open upload of the blob that the same way of sending may take up
        (S3 not asked), or None; one that cannot be taken up as it is was sent is forgotten."""
        row = self.rows.latest_for(user, digest, size)
        if row is None or row.part_size != part_size:
            return None
        up = upload_of(row)
        if up.multipart is not None and up.streamed != stream:
            return None  # sent another way: never mixed (the server trusts its own parts only)
        if up.older_stream:
            self.abort_s3(up)  # streamed by an older server (its own part records): begun again
            return None
        if self.s3 is None and not os.path.exists(self._paths(up)[0]):
            self.abort(up)
            return None
        return up

    def describe(self, up: Upload, *, new: bool = False) -> dict[str, Any]:
        """An upload as the client sees it: how to send it (``mode``), the parts kept (none
        of one begun just now: S3 is not asked)."""
        out: dict[str, Any] = {
            "id": up.id,
            "digest": up.digest,
            "size": up.size,
            "part_size": up.part_size,
        }
        if up.unnamed:  # (``keyfree``: its parts go to S3 at once, to a key of its own)
            out.update(mode="stream", unnamed=True, keyfree=not up.held, parts_done=[])
        elif self.s3 is not None and up.multipart is not None:
            mode = "stream" if up.streamed else "presigned-parts"
            out.update(mode=mode, parts_done=[] if new else self._s3_parts(up))
        elif self.s3 is not None:
            headers = {"x-amz-checksum-sha256": checksum_b64(up.digest)}
            url = self.s3.client.generate_presigned_url(
                "put_object",
                Params={
                    "Bucket": self.s3.bucket,
                    "Key": up.ref,
                    "ChecksumSHA256": headers["x-amz-checksum-sha256"],
                },
                ExpiresIn=PRESIGN_SECONDS,
            )
            out.update(mode="presigned", url=url, headers=headers, parts_done=[])
        else:
            _, parts = self._paths(up)
            done = sorted(int(n) for n in os.listdir(parts)) if os.path.isdir(parts) else []
            out.update(mode="parts", parts_done=done)
        return out

    def _s3_parts(self, up: Upload) -> list[int]:
        return sorted(p["PartNumber"] - 1 for p in self.s3_list(up))

    def s3_list(self, up: Upload) -> list[dict[str, Any]]:
        assert self.s3 is not None and up.multipart is not None
        key, s3_id = up.multipart
        out: list[dict[str, Any]] = []
        try:
            pages = self.s3.client.get_paginator("list_parts").paginate(
                Bucket=self.s3.bucket, Key=key, UploadId=s3_id
            )
            for page in pages:
                out.extend(page.get("Parts", []))
        except Exception as exc:  # noqa: BLE001 - translated
            raise self.s3.translate(exc) from None
        return out

    def part_url(self, user: str, upload_id: str, n: int, checksum: str) -> dict[str, Any]:
        """A presigned URL for part ``n`` that S3 accepts only with this SHA-256 (base64)."""
        up = self.load(user, upload_id)
        if self.s3 is None or up.multipart is None or up.streamed:
            raise ValidationError(f"upload {upload_id} does not take parts by presigned URL")
        up.part_length(n)
        if len(checksum) != 44 or not checksum.endswith("="):
            raise ValidationError("checksum must be a base64 SHA-256 (44 characters)")
        key, s3_id = up.multipart
        url = self.s3.client.generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": self.s3.bucket,
                "Key": key,
                "UploadId": s3_id,
                "PartNumber": n + 1,
                "ChecksumSHA256": checksum,
            },
            ExpiresIn=PRESIGN_SECONDS,
        )
        return {"url": url, "headers": {"x-amz-checksum-sha256": checksum}}

    def name(self, user: str, upload_id: str, digest: str, *, stored: bool) -> dict[str, Any]:
        """Name the blob of an upload begun before its digest (``Streamed.name``)."""
        if self.streamed is None:
            self.load(user, upload_id)  # an upload of this key's, or 404
            raise ValidationError(f"upload {upload_id} is not waiting for its blob's name")
        return self.streamed.name(user, upload_id, digest, stored=stored)

    def open_stream(self, user: str, upload_id: str) -> StreamSink:
        """Where the whole content of an S3 upload goes, from its first byte (``stream``)."""
        up = self.load(user, upload_id)
        if self.streamed is None or not (up.unnamed or up.streamed):
            raise ValidationError(f"upload {upload_id} does not take its content in one stream")
        return self.streamed.open(up)

    def _marks(self, up: Upload) -> str:
        assert self.s3 is not None
        return f"{self.s3.prefix}uploads/{up.id}/parts/"

    def abort_s3(self, up: Upload) -> None:
        """Abort an upload's S3 multipart upload (if it has one) and forget the upload."""
        if self.s3 is not None and up.multipart is not None:
            self.abort_multipart(*up.multipart)
            if up.older_stream:
                drop_marks(self.s3, self._marks(up))  # an older server's part records
        self.abort(up)

    def abort_multipart(self, key: str, s3_id: str) -> None:
        """Abort an S3 multipart upload; no row is touched."""
        assert self.s3 is not None
        try:
            self.s3.client.abort_multipart_upload(Bucket=self.s3.bucket, Key=key, UploadId=s3_id)
        except Exception:  # noqa: BLE001 - already gone, or S3 down: the row goes anyway
            pass

    def status(self, user: str, upload_id: str) -> dict[str, Any]:
        return self.describe(self.load(user, upload_id))

    def open_part(self, user: str, upload_id: str, n: int) -> PartWriter:
        """Where part ``n`` goes: written as it arrives, marked done only if it was whole."""
        up = self.load(user, upload_id)
        if self.s3 is not None:
            raise ValidationError("this upload goes straight to the object store, not in parts")
        length = up.part_length(n)
        path, parts = self._paths(up)
        try:
            fd = open_for_part(path)  # locked; refused once completed (never into a blob)
        except FileNotFoundError:
            raise NotFoundError(f"upload {upload_id!r} has no spool file; begin again") from None
        return PartWriter(fd, n * up.part_size, length, os.path.join(parts, str(n)))

    def complete(self, user: str, upload_id: str) -> tuple[str, int]:
        """Verify and store the upload's blob; return its digest and size."""
        up = self.load(user, upload_id)
        if up.unnamed:
            raise ValidationError(f"upload {upload_id} is completed by sending its content")
        try:
            if self.object_store is not None:
                return up.digest, self._complete_presigned(self.object_store, up)
            return up.digest, self._complete_parts(up)
        except DigestMismatchError:
            self.abort(up)
            raise

    def _complete_parts(self, up: Upload) -> int:
        path, parts = self._paths(up)
        done = {int(n) for n in os.listdir(parts)} if os.path.isdir(parts) else set()
        missing = [n for n in range(up.part_count) if n not in done]
        if missing and up.size > 0:
            raise ValidationError(f"upload {up.id} lacks parts {missing[:10]}; send them first")
        # No part in flight (else 503) nor writing until it is stored (``held_spool``). Fsynced
        # while hashed (disk and core at once), waited for before ``take_file``: as durable.
        with held_spool(path, up.id) as f, ThreadPoolExecutor(1, "cairn-fsync") as flusher:
            flushed = flusher.submit(os.fsync, f.fileno())
            digest, size = hash_stream(f)
            flushed.result()
            if digest != up.digest or size != up.size:
                raise DigestMismatchError(
                    f"upload of blob {up.digest} has other content (digest mismatch); refused"
                )
            self.blobs.take_file(path, up.digest)  # verified and fsynced just now
        self.abort(up)
        return size

    def _complete_in_place(self, store: ObjectStore, up: Upload) -> int:
        """A multipart upload to the blob's own key: completed only where no object is there yet
        (``If-None-Match: *``), then verified (read back where S3 reports no whole-object
        SHA-256) before the catalog records it; content that fails is removed, never recorded."""
        assert up.multipart is not None
        key, s3_id = up.multipart
        s3, index = store.s3, store.index
        client, bucket = s3.client, s3.bucket
        known = index.sizes_many([up.digest]).get(up.digest)
        if known is None:
            parts = self.s3_list(up)
            if sorted(p["PartNumber"] for p in parts) != list(range(1, up.part_count + 1)):
                raise ValidationError(f"upload {up.id} lacks parts; send them first")
            # False: an object is there already: verified below, kept as it is
            completed = s3.complete_multipart(key, s3_id, parts, if_absent=True)
        if known is not None or not completed:
            try:
                client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=s3_id)
            except Exception:  # noqa: BLE001 - gone already; a lifecycle rule sweeps the rest
                pass
        if known is not None:
            size = known
        else:
            try:
                size = s3.verify_object(key, up.digest)
            except DigestMismatchError:
                if completed:
                    s3.delete_many([up.digest])
                raise
        if size != up.size:
            raise DigestMismatchError(f"upload of blob {up.digest} has {size} bytes, not {up.size}")
        index.record([(up.digest, size, None)])
        self.forget(up.id)
        return size

    def _complete_presigned(self, store: ObjectStore, up: Upload) -> int:
        s3 = store.s3
        key, multipart = up.ref, up.multipart
        if multipart is not None and up.streamed:
            raise ValidationError(f"upload {up.id} is completed by sending its content in one")
        if multipart is not None and multipart[0] == s3.key_of(up.digest):
            return self._complete_in_place(store, up)
        if multipart is not None:
            key, s3_id = multipart
            parts = self.s3_list(up)
            if sorted(p["PartNumber"] for p in parts) != list(range(1, up.part_count + 1)):
                raise ValidationError(f"upload {up.id} lacks parts; send them first")
            s3.complete_multipart(key, s3_id, parts)
        size = s3.adopt(key, up.digest)
        if size != up.size:
            raise DigestMismatchError(f"upload of blob {up.digest} has {size} bytes, not {up.size}")
        store.index.record([(up.digest, size, None)])
        self.forget(up.id)
        return size

    def sweep(self, older_than: float) -> int:
        """Abort uploads begun more than ``older_than`` seconds ago (clients that went away):
        their rows, spool files and S3 multipart uploads; and spool files no row owns (a server
        killed between the two). Returns how many were removed."""
        cutoff = time.time() - older_than
        live = time.time() - LIVE_FOR  # a stream on it sent a part since: not abandoned
        rows = [row for row in self.rows.begun_before(cutoff) if not row.live(live)]
        for row in rows:
            if self.streamed is not None:  # an object completed at its own key, not indexed
                self.streamed.drop_unindexed(upload_of(row))
            self.abort_s3(upload_of(row))
        self.rows.drop_orphan_parts()
        orphans = 0 if self.streamed is None else self.streamed.sweep_orphans(cutoff)
        known = self.rows.ids()
        for entry in os.scandir(self.spool):
            upload_id = entry.name.split(".", 1)[0]
            try:
                if upload_id not in known and entry.stat().st_mtime < cutoff:
                    if entry.is_dir():
                        for name in os.listdir(entry.path):
                            os.unlink(os.path.join(entry.path, name))
                        os.rmdir(entry.path)
                    else:
                        os.unlink(entry.path)
                    orphans += 1
            except FileNotFoundError:
                pass
        self._last_sweep = time.monotonic()
        return len(rows) + orphans

    def sweep_now_and_then(self) -> None:
        """Sweep at most once an hour, from a request that begins an upload."""
        if time.monotonic() - self._last_sweep > 3600:
            self._last_sweep = time.monotonic()
            self.sweep(self.max_age)

    def abort(self, up: Upload) -> None:
        if self.s3 is None:
            path, parts = self._paths(up)
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            # Another server process may be sweeping the same upload: what is gone is gone.
            shutil.rmtree(parts, ignore_errors=True)
        self.forget(up.id)
