"""A large blob streamed through the server into an S3 multipart upload, verified on the way.

The client sends the whole blob in one request (``PUT /uploads/{id}/content``). The server hashes
it as it arrives (the blob's SHA-256, one pass) and checks each part on its way to S3 with a
CRC32 (``x-amz-checksum-crc32``, which S3 checks: the bytes S3 keeps are the bytes the server
hashed), hands each full part to a worker thread that uploads it (``IN_FLIGHT`` at a time), and
once the last byte is in and the digest matches, completes the multipart upload at the blob's own
key only where no object is yet (``If-None-Match: *``) and records the blob in the catalog: one
pass through the object store, no read-back, no server-side copy. Content with another digest is
never completed: its multipart upload is aborted and the upload forgotten.

Resuming: S3 keeps the parts that were uploaded. The client sends the blob again from its first
byte (the server hashes all of it to verify the digest); a part that S3 kept is not uploaded
again when everything up to its end is what was sent before: the server records each part S3
acknowledged in the catalog (``upload_parts``: its ETag, its CRC32 and the SHA-256 of the blob's
bytes up to the end of that part, the running hash's state there, no extra pass), trusted only
while S3 lists the part with that ETag. A CRC32 alone would not do for that (content can be made
to match one); the prefix's SHA-256 cannot. Nobody else writes the parts of a streamed upload:
it hands out no presigned part URLs. (Servers before the eleventh session kept these records as
marker objects in S3, one PUT per part: ``drop_marks`` removes those of their uploads.)

Begun before its digest (``unnamed``): the client sends while it hashes, and names the blob by
another request, which may reach another server process. The parts go at once to a key of the
upload's own (``named``: only the end waits for the name). An upload a server
before the fifteenth session began holds its parts instead (at most ``IN_FLIGHT + 1``
buffers, then it stops reading), sending none until named: their key is the blob's. It looks at the upload's catalog row for the name (``StreamTarget``:
where the parts go), ``NAME_POLL`` seconds after the last look, growing to ``NAME_POLL_MAX``,
for at most ``NAME_WAIT`` seconds; a naming in the same server process wakes it at once (``wake``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fastapi.concurrency import run_in_threadpool

from cairn.catalog import PartRecord
from cairn.core import digest_from_hasher, new_hasher
from cairn.errors import DigestMismatchError, NotFoundError, ValidationError
from cairn.storage import S3BlobStore

IN_FLIGHT = 8  # parts on their way to the object store at once, per upload (memory: 9 parts)
NAME_POLL = 0.02  # seconds between the first looks at an unnamed upload's row, growing
NAME_POLL_MAX = 0.1  # to this
NAME_WAIT = 120.0  # seconds an unnamed upload waits for its name, whatever its size
_GONE = "no such upload: the blob named is stored already, or the upload was abandoned"


@dataclass(frozen=True, slots=True)
class StreamTarget:
    """Where a named stream's parts go and what its end does: the S3 multipart upload at the
    blob's key (``multipart``: key, S3 upload id), the blob's digest, the parts S3 kept of an
    earlier attempt that were recorded (``kept``, see ``kept_parts``), ``record(number, prefix
    SHA-256, CRC32, ETag)`` of a part S3 has, ``complete(parts)`` (completes and records the
    verified blob, in a thread; its size) and ``abort()`` (content with another digest)."""

    multipart: tuple[str, str]
    digest: str
    kept: dict[int, dict[str, Any]]
    record: Callable[[int, bytes, bytes, str], None]
    complete: Callable[[list[dict[str, Any]]], int]
    abort: Callable[[], None]
    # Whether the upload is gone (a part S3 refused: its multipart upload was aborted by a
    # naming that found the blob stored, or by the sweep); asked only when a part fails.
    gone: Callable[[], bool] = lambda: False


class StreamSink:
    """Takes the bytes of one upload in order (``feed``), then ``finish``es it.

    ``target``: where the parts go (``StreamTarget``), or for an upload begun before its digest
    a look at its row (``StreamTarget`` once named, None until then; it raises
    ``NotFoundError`` once the row is gone: the blob was stored already, or the upload swept),
    made in a thread from the first full part on, ``NAME_POLL`` seconds apart growing to
    ``NAME_POLL_MAX``, for at most ``name_within`` seconds. ``release`` is called once the
    upload is named or its stream ended (the server counts the uploads that wait).

    The event loop only copies each chunk into the part filling up (one copy, into one of at
    most ``IN_FLIGHT + 1`` part buffers that are reused, never a fresh allocation per part);
    a full part is hashed in a thread of its own, in order (the blob's SHA-256 and the part's
    CRC32; hashlib and zlib let go of the GIL), then sent from another, so receiving, hashing
    and sending overlap. A part goes to botocore as a ``bytearray``: sent in one write, where
    ``bytes`` are wrapped in a file (read and sent 16 KiB at a time, after an
    ``Expect: 100-continue`` round trip). A part of an unnamed upload waits, hashed, in its
    buffer for the name; so at most ``IN_FLIGHT + 1`` parts are held, then ``feed`` waits."""

    def __init__(
        self,
        s3: S3BlobStore,
        size: int,
        part_size: int,
        target: StreamTarget | Callable[[], StreamTarget | None],
        *,
        named: Callable[[], StreamTarget | None] | None = None,
        name_within: float = NAME_WAIT,
        release: Callable[[], None] | None = None,
    ) -> None:
        self._s3 = s3
        self.size = size
        self._part_size = part_size
        # ``named``: ``target``'s digest is not known yet (its parts go to a key of their own
        # at once): its end waits for the name, looked up as an unnamed upload's (see above).
        self._target: StreamTarget | None = None
        self._lookup: Callable[[], StreamTarget | None] | None = named
        if isinstance(target, StreamTarget):
            self._target = target
        else:
            self._lookup = target
        self._name_within = name_within
        self._release = release
        self._named: asyncio.Future[StreamTarget] | None = None  # resolved by ``_wait_name``
        self._polling: asyncio.Task[None] | None = None
        self._woken = asyncio.Event()  # ``wake``: look at the row now
        self._loop: asyncio.AbstractEventLoop | None = None  # while ``_wait_name`` waits
        self._hasher = new_hasher()
        self._hashing: ThreadPoolExecutor | None = None  # one thread: parts hashed in order
        self._free: list[bytearray] = []  # part buffers to fill again
        self._buf: bytearray | None = None  # the part filling up
        self._filled = 0
        self._received = 0
        self._parts: list[dict[str, Any]] = []
        self._pending: list[asyncio.Future[dict[str, Any]]] = []
        self.sent = 0  # parts uploaded to the object store by this request
        self.reused = 0  # parts the object store kept from an earlier attempt

    @property
    def digest(self) -> str:
        """The blob's digest as named ('' while the upload waits for its name)."""
        return "" if self._target is None else self._target.digest

    async def feed(self, chunk: bytes) -> None:
        self._received += len(chunk)
        if self._received > self.size:
            raise ValidationError(f"the upload is {self.size} bytes; more arrived")
        view = memoryview(chunk)
        while view:
            if self._buf is None:
                self._buf = await self._buffer()
            take = min(len(view), self._part_size - self._filled)
            self._buf[self._filled : self._filled + take] = view[:take]
            self._filled += take
            view = view[take:]
            if self._filled == self._part_size:
                self._flush()

    async def _buffer(self) -> bytearray:
        """A buffer for the next part, once fewer than ``IN_FLIGHT`` parts are on their way."""
        while len(self._pending) >= IN_FLIGHT:
            self._parts.append(await self._pending.pop(0))
        return self._free.pop() if self._free else bytearray(self._part_size)

    def _flush(self) -> None:
        buf, filled = self._buf, self._filled
        assert buf is not None
        self._buf, self._filled = None, 0
        number = len(self._parts) + len(self._pending) + 1
        if self._hashing is None:
            self._hashing = ThreadPoolExecutor(1, thread_name_prefix="cairn-stream-hash")
        # Submitted here, part after part: the one hashing thread takes them in order.
        hashed = asyncio.get_running_loop().run_in_executor(self._hashing, self._hash, buf, filled)
        self._pending.append(asyncio.ensure_future(self._send(number, buf, filled, hashed)))

    def _hash(self, buf: bytearray, filled: int) -> tuple[bytes, bytes]:
        """(the part's CRC32, the SHA-256 of the blob up to the part's end)."""
        with memoryview(buf)[:filled] as view:
            self._hasher.update(view)
            crc = zlib.crc32(view).to_bytes(4, "big")
        return crc, self._hasher.copy().digest()

    async def _ready(self) -> StreamTarget:
        """Where the parts go: at once for a named upload, else once the client named it."""
        if self._target is not None:
            return self._target
        if self._named is None:
            self._named = asyncio.get_running_loop().create_future()
            self._polling = asyncio.ensure_future(self._wait_name(self._named))
        return await asyncio.shield(self._named)  # a cancelled part leaves the others waiting

    async def _wait_name(self, named: asyncio.Future[StreamTarget]) -> None:
        assert self._lookup is not None
        deadline = time.monotonic() + self._name_within
        pause = NAME_POLL
        woken = self._woken
        self._loop = asyncio.get_running_loop()
        try:
            while True:
                woken.clear()  # a wake from here on is not missed: the next wait sees it
                if (target := await run_in_threadpool(self._lookup)) is not None:
                    break
                if time.monotonic() > deadline:
                    raise ValidationError(
                        f"the upload was not named within {self._name_within:.0f} s"
                        " (POST its digest to /uploads/{id}/name): begin it again"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), pause)
                pause = min(NAME_POLL_MAX, pause * 1.5)
        except Exception as exc:  # noqa: BLE001 - the parts waiting raise it
            if not named.done():
                named.set_exception(exc)
            return
        finally:
            self._loop = None
        self._target = target
        self.released()
        if not named.done():
            named.set_result(target)

    def wake(self) -> None:
        """The upload was named (or forgotten) by a request in this process: the stream looks
        at the row now, not at its next look. Any thread; nothing if it is not waiting."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                loop.call_soon_threadsafe(self._woken.set)

    def released(self) -> None:
        """No longer waiting for a name (named, or the stream ended): said once."""
        release, self._release = self._release, None
        if release is not None:
            release()

    async def _give_up_naming(self) -> None:
        """The stream ended before its name came: one more look at the row (named after all:
        the parts on their way go, and are recorded for the next attempt), then none waits."""
        named = self._named
        if named is None or named.done():
            return
        if self._polling is not None:
            self._polling.cancel()
        try:
            target = await run_in_threadpool(self._lookup) if self._lookup else None
        except Exception as exc:  # noqa: BLE001 - the parts waiting raise it
            named.set_exception(exc)
            return
        if target is None:
            named.set_exception(NotFoundError("the upload ended before its blob was named"))
        else:
            self._target = target
            named.set_result(target)

    async def _send(
        self, number: int, buf: bytearray, filled: int, hashed: asyncio.Future[tuple[bytes, bytes]]
    ) -> dict[str, Any]:
        try:
            crc, prefix = await hashed
            target = await self._ready()
            kept = target.kept.get(number)
            if kept is not None and kept["prefix"] == prefix and kept["crc"] == crc:
                self.reused += 1
                return _part(number, kept["ETag"], crc)
            body = buf if filled == len(buf) else buf[:filled]
            return await run_in_threadpool(self._put_part, target, number, body, crc, prefix)
        finally:
            self._free.append(buf)  # the part is sent (or failed): its buffer takes another

    def _put_part(
        self, target: StreamTarget, number: int, body: bytearray, crc: bytes, prefix: bytes
    ) -> dict[str, Any]:
        key, upload_id = target.multipart
        try:
            made = self._s3.client.upload_part(
                Bucket=self._s3.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
                ChecksumCRC32=base64.b64encode(crc).decode(),
            )
        except Exception as exc:  # noqa: BLE001 - translated
            if target.gone():  # aborted: the key had the blob, or the upload was swept
                raise NotFoundError(_GONE) from None
            raise self._s3.translate(exc) from None
        # What was sent up to this part's end, for a later attempt (see the module).
        target.record(number, prefix, crc, str(made["ETag"]))
        self.sent += 1
        return _part(number, made["ETag"], crc)

    async def finish(self) -> int:
        """Upload the last part, check the whole (size, then digest) and complete; the size."""
        if self._filled:
            self._flush()
        await self.drain()
        if self._received != self.size:
            raise ValidationError(
                f"the upload is {self.size} bytes; {self._received} arrived. Send it again"
            )
        target = await self._ready()
        if not target.digest:  # sent to a key of its own: the name may still be on its way
            self._target = None
            target = await self._ready()
        if digest_from_hasher(self._hasher) != target.digest:
            await run_in_threadpool(target.abort)
            raise DigestMismatchError(
                f"upload of blob {target.digest} has other content (digest mismatch); refused"
            )
        self._parts.sort(key=lambda p: int(p["PartNumber"]))
        return await run_in_threadpool(target.complete, self._parts)

    async def drain(self, *, cut_off: bool = False) -> None:
        """Wait for the parts on their way (kept by S3 for a later attempt, or failed); with
        ``cut_off`` (the stream failed), an upload not named yet waits no longer."""
        if cut_off:
            await self._give_up_naming()
        pending, self._pending = self._pending, []
        try:
            if pending:
                await asyncio.wait(pending)
                for fut in pending:
                    self._parts.append(fut.result())  # the first part that failed raises
        finally:
            if not self._pending and self._hashing is not None:
                self._hashing.shutdown(wait=False)  # nothing left to hash: its thread ends
                self._hashing = None
            self._free.clear()


async def receive_stream(sink: StreamSink, chunks: Any) -> dict[str, Any]:
    """Feed a request's body to ``sink`` and finish it; on any failure, parts on their way
    still land (S3 keeps them for the next attempt) before the error is answered."""
    try:
        async for chunk in chunks:
            if chunk:
                await sink.feed(chunk)
        size = await sink.finish()
    except BaseException:
        try:
            await sink.drain(cut_off=True)
        except Exception:  # noqa: BLE001 - the request's own error is the one to answer
            pass
        raise
    finally:
        sink.released()
    return {"digest": sink.digest, "size": size, "parts_sent": sink.sent, "parts_kept": sink.reused}


def _part(number: int, etag: str, crc: bytes) -> dict[str, Any]:
    """A part as ``complete_multipart_upload`` takes it."""
    return {"PartNumber": number, "ETag": etag, "ChecksumCRC32": base64.b64encode(crc).decode()}


def kept_parts(
    recorded: dict[int, PartRecord], listed: list[dict[str, Any]]
) -> dict[int, dict[str, Any]]:
    """The parts S3 lists (``listed``) that the server recorded (``recorded``, by number) with
    the ETag S3 lists: number -> the part's ETag, the SHA-256 of the blob up to its end
    (``prefix``) and its CRC32 (``crc``)."""
    etags = {int(p["PartNumber"]): str(p["ETag"]).strip('"') for p in listed}
    return {
        number: {"ETag": f'"{etags[number]}"', "prefix": part.prefix_sha256, "crc": part.crc32}
        for number, part in recorded.items()
        if number in etags and etags[number] == part.etag.strip('"')
    }


def drop_marks(s3: S3BlobStore, marks: str) -> None:
    """Remove the part markers an older server kept in S3 for an upload; best effort."""
    try:
        keys = _marker_keys(s3, marks)
        for start in range(0, len(keys), 1000):
            s3.client.delete_objects(
                Bucket=s3.bucket,
                Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]], "Quiet": True},
            )
    except Exception:  # noqa: BLE001 - leftovers under uploads/ harm nothing
        pass


def _marker_keys(s3: S3BlobStore, marks: str) -> list[str]:
    pages = s3.client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=marks)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]
