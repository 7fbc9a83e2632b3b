"""Blobs and uploads as one API key may use them: it reads what its grants allow (a blob it
uploaded, or one a project it may read refers to), and what it stores is recorded as its upload.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from cairn.errors import PermissionDeniedError
from cairn.server._batches import BatchUpload
from cairn.server._key_rules import KeyRules
from cairn.server._stream_upload import StreamSink
from cairn.server._upload_parts import PartWriter
from cairn.storage import BlobInfo


class ScopedBlobs(KeyRules):
    """The blob and upload methods of ``ScopedService``."""

    # -- blobs --

    def store_blobs(
        self, items: Sequence[tuple[str, bytes]], *, known_missing: bool = False
    ) -> None:
        """Store verified blobs (``items`` re-hashed by the caller) as uploaded by this key."""
        self.require_upload()
        self._b.blobs.put_many(items)
        self._uploads.record_uploaded(self.who.uploader, [d for d, _ in items])

    def batch_upload(self) -> BatchUpload:
        """Blobs of one batch request, recorded as uploaded by this key (``server/_batches.py``)."""
        self.require_upload()
        return BatchUpload(self._b.blobs, self._b.catalog_blobs, self._uploads, self.who.uploader)

    def store_file(self, path: str, *, link: bool = False) -> BlobInfo:
        raise PermissionDeniedError("files are uploaded through /api/v1/uploads")

    def store_blob_file(
        self, path: str, digest: str, size: int, *, sent: Callable[[], None] | None = None
    ) -> None:
        raise PermissionDeniedError("files are uploaded through /api/v1/uploads")

    def missing_blobs(self, digests: Sequence[str]) -> list[str]:
        have = self.readable_blobs(digests)
        # Readable and actually stored: a blob lost from the store (or removed as damaged by
        # verify) is reported missing, so the next log of the same content repairs it.
        have &= self._b.blobs.has_many(list(have))
        return [d for d in dict.fromkeys(digests) if d not in have]

    def read_blob(self, digest: str) -> bytes:
        self.check_blob(digest)
        return self._inner.read_blob(digest)

    def read_blobs(self, digests: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        for digest in digests:
            yield digest, self.read_blob(digest)

    def blob_path(self, digest: str) -> str | None:
        return None  # a blob leaves the server only through a checked read

    def download_blob(self, digest: str, dest: str) -> None:
        self.check_blob(digest)
        self._inner.download_blob(digest, dest)

    def read_blob_range(self, digest: str, start: int, length: int) -> bytes:
        self.check_blob(digest)
        return self._inner.read_blob_range(digest, start, length)

    def prefetch_blobs(self, digests: Sequence[str]) -> None:
        """Nothing to prefetch: the blobs are local to the server."""

    # -- uploads of large blobs (server/_transfers.py) --

    def begin_upload(
        self, digest: str | None, size: int, modes: Sequence[str] = ()
    ) -> dict[str, Any]:
        self.require_upload()
        return self._b.transfers.begin(self.who.uploader, digest, size, modes)

    def name_upload(self, upload_id: str, digest: str) -> dict[str, Any]:
        """Name the blob of an upload begun without its digest: stored already (as
        ``missing_blobs`` sees it for this key: it stops), or go on."""
        self.require_upload()
        stored = not self.missing_blobs([digest])
        return self._b.transfers.name(self.who.uploader, upload_id, digest, stored=stored)

    def upload_status(self, upload_id: str) -> dict[str, Any]:
        self.require_upload()
        return self._b.transfers.status(self.who.uploader, upload_id)

    def open_upload_part(self, upload_id: str, number: int) -> PartWriter:
        self.require_upload()
        return self._b.transfers.open_part(self.who.uploader, upload_id, number)

    def open_upload_stream(self, upload_id: str) -> StreamSink:
        self.require_upload()
        return self._b.transfers.open_stream(self.who.uploader, upload_id)

    def record_upload(self, digest: str) -> None:
        """A blob this key uploaded (verified and stored): it may now name it."""
        self._uploads.record_uploaded(self.who.uploader, [digest])

    def upload_part_url(self, upload_id: str, number: int, checksum: str) -> dict[str, Any]:
        self.require_upload()
        return self._b.transfers.part_url(self.who.uploader, upload_id, number, checksum)

    def complete_upload(self, upload_id: str) -> tuple[str, int]:
        self.require_upload()
        digest, size = self._b.transfers.complete(self.who.uploader, upload_id)
        self.record_upload(digest)
        return digest, size
