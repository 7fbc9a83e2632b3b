"""Uploads streamed through the server to an S3 store (``Transfers``' mode ``stream``): begun
with the blob's digest (``Transfers.begin``) or before it (``begin_unnamed``: the client sends
while it hashes, then ``name``s the blob by another request, which may reach another server
process: they meet in the upload's catalog row), the sink each request's content goes to
(``open``: ``_stream_upload.StreamSink``), and the completion of what the sink verified.
See docs/design.md ("Transfers", S3 store from 8 MiB).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from cairn.core import check_digest
from cairn.errors import CommError, ConflictError, NotFoundError, ValidationError
from cairn.server._stream_upload import NAME_WAIT, StreamSink, StreamTarget, kept_parts
from cairn.server._upload_parts import Upload, multipart_of
from cairn.service import UNNAMED_FROM, UNNAMED_UP_TO

if TYPE_CHECKING:
    from cairn.server._transfers import ObjectStore, Transfers

_log = logging.getLogger("cairn.server")

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
# A streamed upload whose stream sent a part (or began) this recently is live: never taken up.
LIVE_FOR = 60.0
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
        digest ``''`` and an S3 multipart upload at a key of its own (``streamed/<upload
        id>``, not the blob's), begun now, so the parts go to S3 as they arrive; the blob is
        named (``name``) while they do, and its index row names that key."""
        if "stream" not in modes or not UNNAMED_FROM <= size <= UNNAMED_UP_TO:
            raise ValidationError(UNNAMED_ONLY)
        t = self._t
        t.sweep_now_and_then()
        part_size = t.stream_part_size(size)
        upload_id = secrets.token_hex(16)
        ref = t.multipart_at(self._store.s3.streamed_key(upload_id), True)
        up = Upload(upload_id, user, "", size, part_size, ref)
        try:
            t.rows.insert(up)
        except BaseException:
            made = multipart_of(ref)
            assert made is not None
            t.abort_multipart(*made)
            raise
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
        if stored:  # (parts of its own in S3 already: aborted)
            t.abort_s3(up)
            return {"stored": True}
        if not up.held:  # its parts went to a key of its own already
            return self._name_own(up, digest)
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

    def _name_own(self, up: Upload, digest: str) -> dict[str, Any]:
        """Name an upload whose parts go to a key of its own. This key's upload of the same
        blob that a stream left (killed client, lost connection; its stream not live for
        ``LIVE_FOR`` seconds) and whose parts S3 kept is worth more than the parts this one
        sent since its begin (about the client's hash time of them): this upload is dropped
        (its multipart upload aborted) and the answer says ``resume``: the client sends the
        file again named, which takes the earlier one up (``Transfers.begin``) and sends only
        the parts S3 does not have. Else the digest is written into the row."""
        t = self._t
        earlier = t.earlier(up.owner, digest, up.size, True, up.part_size)
        if earlier is not None and self._resumable(earlier):
            t.abort_s3(up)
            return {"stored": False, "resume": True}
        if not t.rows.name(up.id, digest, None) and t.load(up.owner, up.id).digest != digest:
            raise ValidationError(f"upload {up.id} is not waiting for its blob's name")
        return {"stored": False}

    def _resumable(self, up: Upload) -> bool:
        """Whether a streamed upload may be taken up: no stream sent it a part for
        ``LIVE_FOR`` seconds (a live one's parts would be written by two streams), it has parts
        recorded, and S3 still has its multipart upload."""
        if up.multipart is None or not up.streamed or up.live(time.time() - LIVE_FOR):
            return False
        if not self._t.rows.parts(up.id):
            return False
        try:
            self._t.s3_list(up)
        except CommError:
            return False
        return True

    def open(self, up: Upload) -> StreamSink:
        """Where the whole content of streamed upload ``up`` goes, from its first byte."""
        store, t = self._store, self._t
        if up.unnamed and not up.held:  # parts to its own key at once; named meanwhile
            return self._hold(
                up.id,
                lambda release: StreamSink(
                    store.s3,
                    up.size,
                    up.part_size,
                    self._target(up, listing=False),
                    named=lambda: self._named_target(up.owner, up.id, listing=False),
                    name_within=min(NAME_WAIT, t.max_age),
                    release=self._ended(up, release),
                ),
                counted=False,
            )
        if up.unnamed:  # held until named (a row an older server began): see ``name``
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
        return StreamSink(
            store.s3, up.size, up.part_size, self._target(up), release=self._ended(up, None)
        )

    def _ended(self, up: Upload, release: Callable[[], None] | None) -> Callable[[], None]:
        """What a stream of ``up`` does once it ended or was named (``release``, then no
        stream is on the upload: another may take it up); the upload is marked live now."""
        self._t.rows.activity(up.id, True)

        def ended() -> None:
            if release is not None:
                release()
            self._t.rows.activity(up.id, False)

        return ended

    def _hold(
        self,
        upload_id: str,
        make: Callable[[Callable[[], None]], StreamSink],
        *,
        counted: bool = True,
    ) -> StreamSink:
        """The stream ``make(release)`` of an upload waiting for its name, found by ``_wake``
        until ``release``; ``counted`` (its parts held until then): one more of the
        ``MAX_WAITING`` at most (refused beyond)."""
        add = 1 if counted else 0
        with self._lock:
            if self._waiting + add > MAX_WAITING:
                raise ConflictError(_BUSY)
            self._waiting += add

        def release() -> None:
            with self._lock:
                self._waiting -= add
                streams = self._streams.get(upload_id, [])
                if sink in streams:
                    streams.remove(sink)
                if not streams:
                    self._streams.pop(upload_id, None)

        try:
            sink = make(release)
        except BaseException:
            with self._lock:
                self._waiting -= add
            raise
        with self._lock:
            self._streams.setdefault(upload_id, []).append(sink)
        return sink

    def _wake(self, upload_id: str) -> None:
        with self._lock:
            streams = list(self._streams.get(upload_id, ()))
        for sink in streams:
            sink.wake()

    def _target(self, up: Upload, *, listing: bool = True) -> StreamTarget:
        """Where a streamed upload's parts go, with the parts an earlier attempt left that S3
        kept (none recorded: the first attempt, S3 is not asked; nor without ``listing``: only
        the end of the upload is wanted)."""
        assert up.multipart is not None
        t = self._t
        recorded = t.rows.parts(up.id) if listing else {}
        kept = kept_parts(recorded, t.s3_list(up)) if recorded else {}
        return StreamTarget(
            up.multipart,
            up.digest,
            kept,
            lambda *part: t.rows.record_part(up.id, *part),
            lambda parts: self._complete(up, parts),
            lambda: t.abort_s3(up),
            lambda: t.rows.get(up.id) is None,
        )

    def _named_target(
        self, user: str, upload_id: str, *, listing: bool = True
    ) -> StreamTarget | None:
        """An unnamed upload's target once ``name`` named it (None until then); its row gone
        (the key had the blob: ``stored``; or swept): ``NotFoundError``."""
        try:
            up = self._t.load(user, upload_id)
        except NotFoundError:
            raise NotFoundError(
                f"no upload {upload_id!r}: the blob named is stored already, or the upload was"
                " abandoned"
            ) from None
        return None if up.unnamed else self._target(up, listing=listing)

    def _complete(self, up: Upload, parts: list[dict[str, Any]]) -> int:
        """Complete a streamed upload whose content the server verified as it arrived: at the
        blob's key where no object is yet; an object there already is verified, kept as it is.
        At a key of its own (begun before the digest): see ``_complete_own``."""
        assert up.multipart is not None
        key, s3_id = up.multipart
        s3 = self._store.s3
        if key != s3.key_of(up.digest):
            return self._complete_own(up, parts)
        if s3.complete_multipart(key, s3_id, parts, if_absent=True):
            size = up.size
        else:  # an object is there already
            self._t.abort_s3(up)
            size = s3.verify_object(key, up.digest)
        self._store.index.record([(up.digest, size, None)])
        self._t.forget(up.id)  # and its parts' records
        return size

    def _complete_own(self, up: Upload, parts: list[dict[str, Any]]) -> int:
        """Complete an upload at a key of its own (``streamed/<upload id>``), verified as it
        arrived: a blob the index has already (another upload won meanwhile) aborts it;
        else completed, tagged with its digest (best effort: some S3-compatible stores have
        no tagging), and indexed at that key unless another upload of the same blob indexed it
        first: then this object is removed before the upload's row goes (a server killed
        before leaves the row, and the sweep removes what no index row names)."""
        assert up.multipart is not None
        key, s3_id = up.multipart
        s3, index = self._store.s3, self._store.index
        known = index.size(up.digest)
        if known is not None:
            self._t.abort_s3(up)
            return known
        s3.complete_multipart(key, s3_id, parts)
        try:
            s3.tag_digest(key, up.digest)
        except Exception as exc:  # noqa: BLE001 - the index names the object either way
            _log.warning(
                "object tag not written",
                extra={"fields": {"event": "tag_failed", "error": repr(exc)}},
            )
        own = key[len(s3.prefix) :]
        if index.record_keyed(up.digest, up.size, own) != own:
            s3.delete_keys([key])  # another upload's row won: this object is nobody's
        self._t.forget(up.id)  # and its parts' records
        return up.size

    def drop_unindexed(self, up: Upload) -> None:
        """An abandoned upload at a key of its own (the sweep): the object a server completed
        there and did not index (killed between the two, or it lost a race and was killed
        before it removed the object) is removed; one an index row names stays."""
        s3 = self._store.s3
        made = up.multipart
        if made is None or not made[0].startswith(s3.streamed_key("")):
            return
        own = made[0][len(s3.prefix) :]
        if not self._store.index.indexed_keys([own]):
            s3.delete_keys([made[0]])

    def sweep_orphans(self, cutoff: float) -> int:
        """Multipart uploads under ``streamed/`` begun before ``cutoff`` that no upload under
        way refers to (a server killed between beginning one and writing its row, or a part
        that landed after a naming aborted it): aborted. Bounded by the multipart uploads open,
        not by the blobs stored. Returns how many."""
        s3 = self._store.s3
        under_way = {
            made[0]
            for row in self._t.rows.begun_before(float("inf"))
            if (made := multipart_of(row.ref)) is not None
        }
        aborted = 0
        for key, s3_id, at in list(s3.streamed_multiparts()):
            if at < cutoff and key not in under_way:
                self._t.abort_multipart(key, s3_id)
                aborted += 1
        return aborted
