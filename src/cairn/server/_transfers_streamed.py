"""Uploads streamed through the server to an S3 store (``Transfers``' mode ``stream``): begun
with the blob's digest (``Transfers.begin``) or before it (``begin_unnamed``: the client sends
while it hashes, then ``name``s the blob by another request, which may reach another server
process: they meet in the upload's catalog row), the sink each request's content goes to
(``open``: ``_stream_upload.StreamSink``), and the completion of what the sink verified.
See docs/design.md ("Transfers", S3 store from 8 MiB).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from cairn.core import check_digest
from cairn.errors import CommError, ConflictError, NotFoundError, ValidationError
from cairn.server._stream_upload import NAME_WAIT, StreamSink, StreamTarget, kept_parts
from cairn.server._upload_parts import (
    UNNAMED_REF,
    Upload,
    completed_parts,
    multipart_of,
    s3_error_code,
)
from cairn.service import UNNAMED_FROM, UNNAMED_UP_TO

if TYPE_CHECKING:
    from cairn.server._transfers import ObjectStore, Transfers

# Uploads begun before their digest: S3 stores only (a local one hashes the spool file at
# ``complete``, against the digest it was begun with), from the size S3 stores take in parts.
UNNAMED_ONLY = (
    "name the blob (its digest) to begin this upload: this server takes a blob before its"
    f" digest only streamed to an S3 store, of {UNNAMED_FROM} to {UNNAMED_UP_TO} bytes"
)
# Unnamed uploads one server process holds parts of at once (each up to nine part buffers, 72
# MiB): over this, one is refused as a conflict with the server's state (409, not the 400 of
# a server that never takes them: the client hashes this file first and tries again with the next).
MAX_WAITING = 8
_BUSY = (
    f"this server holds the parts of {MAX_WAITING} uploads waiting for their names already:"
    " name the blob (its digest) to begin this upload"
)


class Streamed:
    """The streamed uploads of ``transfers``, whose store is ``store``."""

    def __init__(self, transfers: Transfers, store: ObjectStore) -> None:
        self._t = transfers
        self._store = store
        self._waiting = 0  # unnamed uploads whose stream waits for the name, in this process
        self._streams: dict[str, list[StreamSink]] = {}  # their streams, by upload id
        self._lock = threading.Lock()

    def begin_unnamed(self, user: str, size: int, modes: Sequence[str]) -> dict[str, Any]:
        """A streamed upload begun before the client has the blob's digest: a row with the
        digest ``''``, nothing in S3 until ``name``."""
        if "stream" not in modes or not UNNAMED_FROM <= size <= UNNAMED_UP_TO:
            raise ValidationError(UNNAMED_ONLY)
        if self._waiting >= MAX_WAITING:
            raise ConflictError(_BUSY)
        t = self._t
        t.sweep_now_and_then()
        part_size = t.stream_part_size(size)
        up = Upload(secrets.token_hex(16), user, "", size, part_size, UNNAMED_REF)
        t.rows.insert(up)
        return t.describe(up, new=True)

    def name(self, user: str, upload_id: str, digest: str, *, stored: bool) -> dict[str, Any]:
        """Name the blob of an upload begun before its digest (the client hashed it while it
        sent it). ``stored``: the key would not have to upload it (the caller asked its grants):
        the upload is forgotten and its stream ends. Else this key's earlier streamed upload of
        the blob is taken up (its S3 parts and their records), or a multipart upload begun at
        the blob's key. The stream, wherever it is, finds the name in the row. Naming again
        with the same digest (an answer lost) answers the same."""
        check_digest(digest)
        try:
            return self._name(user, upload_id, digest, stored=stored)
        finally:
            self._wake(upload_id)  # a stream of it in this process looks at its row now

    def _name(self, user: str, upload_id: str, digest: str, *, stored: bool) -> dict[str, Any]:
        t = self._t
        up = t.load(user, upload_id)
        if not up.unnamed:
            if up.digest == digest:
                return {"stored": False}
            raise ValidationError(f"upload {upload_id} is not waiting for its blob's name")
        if stored:
            t.forget(up.id)
            return {"stored": True}
        earlier = t.earlier(user, digest, up.size, True, up.part_size)
        if earlier is not None and earlier.multipart is None:
            earlier = None  # not a stream's (none is, from UNNAMED_FROM on an S3 store)
        if earlier is not None:
            try:
                t.s3_list(earlier)  # S3 still has it
            except CommError:
                t.forget(earlier.id)
                earlier = None
        named = earlier is not None and t.rows.name(
            up.id, digest, earlier.ref, taking_up=earlier.id
        )
        if not named:  # nothing to take up, or another naming took it: a multipart of its own
            ref = t.multipart(digest, True)
            named = t.rows.name(up.id, digest, ref)
            if not named:  # another request named this upload meanwhile: its row stays
                made = multipart_of(ref)
                assert made is not None
                t.abort_multipart(*made)  # only the multipart upload made just now
        if not named and t.load(user, upload_id).digest != digest:
            # named just now by another request (this one sent again names it the same)
            raise ValidationError(f"upload {upload_id} is not waiting for its blob's name")
        return {"stored": False}

    def open(self, up: Upload) -> StreamSink:
        """Where the whole content of streamed upload ``up`` goes, from its first byte."""
        store, t = self._store, self._t
        if up.unnamed:  # the name comes by another request: see ``name``
            return self._hold(
                up.id,
                lambda release: StreamSink(
                    store.s3,
                    up.size,
                    up.part_size,
                    lambda: self._named_target(up.owner, up.id),
                    name_within=min(NAME_WAIT, t.max_age),
                    release=release,
                ),
            )
        if up.older_stream:  # an older server's (its parts are S3 objects):
            t.abort_s3(up)  # its markers dropped; the client begins a new upload
            raise NotFoundError(f"no upload {up.id!r} (begun by an older server: begin again)")
        return StreamSink(store.s3, up.size, up.part_size, self._target(up))

    def _hold(self, upload_id: str, make: Callable[[Callable[[], None]], StreamSink]) -> StreamSink:
        """The stream ``make(release)`` of an upload waiting for its name, counted as one more
        (``MAX_WAITING`` at most: refused beyond) and found by ``_wake`` until ``release``."""
        with self._lock:
            if self._waiting >= MAX_WAITING:
                raise ConflictError(_BUSY)
            self._waiting += 1

        def release() -> None:
            with self._lock:
                self._waiting -= 1
                streams = self._streams.get(upload_id, [])
                if sink in streams:
                    streams.remove(sink)
                if not streams:
                    self._streams.pop(upload_id, None)

        try:
            sink = make(release)
        except BaseException:
            with self._lock:
                self._waiting -= 1
            raise
        with self._lock:
            self._streams.setdefault(upload_id, []).append(sink)
        return sink

    def _wake(self, upload_id: str) -> None:
        with self._lock:
            streams = list(self._streams.get(upload_id, ()))
        for sink in streams:
            sink.wake()

    def _target(self, up: Upload) -> StreamTarget:
        """Where a streamed upload's parts go, with the parts an earlier attempt left that S3
        kept (none recorded: the first attempt, S3 is not asked)."""
        assert up.multipart is not None
        t = self._t
        recorded = t.rows.parts(up.id)
        kept = kept_parts(recorded, t.s3_list(up)) if recorded else {}
        return StreamTarget(
            up.multipart,
            up.digest,
            kept,
            lambda *part: t.rows.record_part(up.id, *part),
            lambda parts: self._complete(up, parts),
            lambda: t.abort_s3(up),
        )

    def _named_target(self, user: str, upload_id: str) -> StreamTarget | None:
        """An unnamed upload's target once ``name`` named it (None until then); its row gone
        (the key had the blob: ``stored``; or swept): ``NotFoundError``."""
        try:
            up = self._t.load(user, upload_id)
        except NotFoundError:
            raise NotFoundError(
                f"no upload {upload_id!r}: the blob named is stored already, or the upload was"
                " abandoned"
            ) from None
        return None if up.unnamed else self._target(up)

    def _complete(self, up: Upload, parts: list[dict[str, Any]]) -> int:
        """Complete a streamed upload whose content the server verified as it arrived: at the
        blob's key where no object is yet; an object there already is verified, kept as it is."""
        assert up.multipart is not None
        key, s3_id = up.multipart
        s3 = self._store.s3
        try:
            s3.client.complete_multipart_upload(
                Bucket=s3.bucket,
                Key=key,
                UploadId=s3_id,
                MultipartUpload={"Parts": completed_parts(parts)},
                IfNoneMatch="*",
            )
            size = up.size
        except Exception as exc:  # noqa: BLE001 - translated
            if s3_error_code(exc) != "PreconditionFailed":
                raise s3.translate(exc) from None
            self._t.abort_s3(up)
            size = s3.verify_object(key, up.digest)
        self._store.index.record([(up.digest, size, None)])
        self._t.forget(up.id)  # and its parts' records
        return size
