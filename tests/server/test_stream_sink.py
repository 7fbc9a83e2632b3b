"""A streamed upload's parts on their way to S3 (``server/_stream_upload.py``), in process: what
each part carries, the buffers they are sent from, and the digest at the end. The object store
is a recorder (the real one is tested in test_transfers_batched.py)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import threading
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from cairn.core import digest_bytes
from cairn.errors import DigestMismatchError, NotFoundError
from cairn.server._stream_upload import IN_FLIGHT, StreamSink, StreamTarget
from tests._infra import run_coroutine

PART = 64 << 10


class _Client:
    """Records ``upload_part`` calls (what each carried, and the body object itself); any other
    request to the object store fails the test."""

    def __init__(self) -> None:
        self.parts: dict[int, dict[str, Any]] = {}
        self.bodies: list[object] = []
        self._lock = threading.Lock()

    def upload_part(self, **kw: Any) -> dict[str, str]:
        body = kw["Body"]
        with self._lock:
            self.bodies.append(body)
            self.parts[kw["PartNumber"]] = {"data": bytes(body), "crc": kw["ChecksumCRC32"]}
        return {"ETag": f'"{hashlib.md5(bytes(body)).hexdigest()}"'}


class _S3:
    bucket = "b"

    def __init__(self) -> None:
        self.client = _Client()

    def translate(self, exc: Exception) -> Exception:
        return exc


def _sink(
    s3: _S3,
    data: bytes,
    digest: str,
    done: list[list[dict[str, Any]]],
    records: dict[int, tuple[bytes, bytes, str]] | None = None,
) -> StreamSink:
    kept = {} if records is None else records

    def record(n: int, prefix: bytes, crc: bytes, etag: str) -> None:
        kept[n] = (prefix, crc, etag)

    return StreamSink(s3, len(data), PART, _target(data, digest, done, record))  # type: ignore[arg-type]


def _target(
    data: bytes,
    digest: str,
    done: list[list[dict[str, Any]]],
    record: Callable[[int, bytes, bytes, str], None] = lambda *_: None,
) -> StreamTarget:
    return StreamTarget(
        ("key", "upload"),
        digest,
        {},
        record,
        lambda parts: done.append(parts) or len(data),
        lambda: None,
    )


async def _stream(sink: StreamSink, data: bytes, chunk: int) -> int:
    for start in range(0, len(data), chunk):
        await sink.feed(data[start : start + chunk])
    return await sink.finish()


def test_parts_go_out_from_a_few_reused_buffers_each_with_its_checksum() -> None:
    """20 parts and a short last one, fed in odd-sized chunks: every part reaches the store with
    its bytes and its CRC32, and is recorded (for the catalog) with its ETag, its CRC32 and the
    SHA-256 of the blob up to its end, without another request to the object store; the parts
    are sent as ``bytearray`` (botocore sends those in one write; ``bytes`` it wraps in a file
    sent 16 KiB at a time after an ``Expect: 100-continue``) from at most ``IN_FLIGHT + 1``
    buffers, reused (the old code built a new ``bytes`` per part: 21 objects)."""
    data = os.urandom(20 * PART + 1000)
    s3, done, records = _S3(), [], {}
    sink = _sink(s3, data, digest_bytes(data), done, records)
    assert run_coroutine(_stream(sink, data, 10_007)) == len(data)
    client = s3.client
    assert sorted(client.parts) == list(range(1, 22)) and sink.sent == 21
    for n, part in client.parts.items():
        expect = data[(n - 1) * PART : n * PART]
        assert part["data"] == expect
        assert part["crc"] == base64.b64encode(zlib.crc32(expect).to_bytes(4, "big")).decode()
    assert sorted(records) == list(range(1, 22))
    for n, (prefix, crc, etag) in records.items():
        part = data[(n - 1) * PART : n * PART]
        assert prefix == hashlib.sha256(data[: n * PART]).digest()
        assert crc == zlib.crc32(part).to_bytes(4, "big")
        assert etag == f'"{hashlib.md5(part).hexdigest()}"'

    assert all(isinstance(b, bytearray) for b in client.bodies)
    assert len({id(b) for b in client.bodies[:-1]}) <= IN_FLIGHT + 1  # the short last: a copy
    assert [p["PartNumber"] for p in done[0]] == list(range(1, 22))


def test_other_content_is_refused_after_its_parts_are_hashed_in_order() -> None:
    data = os.urandom(5 * PART)
    s3, done = _S3(), []
    sink = _sink(s3, data, digest_bytes(data[::-1]), done)
    with pytest.raises(DigestMismatchError):
        run_coroutine(_stream(sink, data, PART // 3))
    assert done == []  # never completed


def test_an_unnamed_upload_holds_at_most_its_buffers_until_named() -> None:
    """An upload begun before its digest: the parts are received and hashed but none goes to
    the object store (its key is the blob's) until a look at the upload's row finds the name;
    meanwhile the sink holds at most ``IN_FLIGHT + 1`` parts and then stops taking chunks.
    Once named, every part goes and the blob completes under the named digest."""
    data = os.urandom(3 * IN_FLIGHT * PART)
    s3, done = _S3(), []
    target = _target(data, digest_bytes(data), done)
    named = threading.Event()
    looks = 0

    def lookup() -> StreamTarget | None:
        nonlocal looks
        looks += 1
        return target if named.is_set() else None

    async def run() -> int:
        sink = StreamSink(s3, len(data), PART, lookup)  # type: ignore[arg-type]
        taken = 0

        async def feed() -> None:
            nonlocal taken
            for start in range(0, len(data), PART // 2):
                await sink.feed(data[start : start + PART // 2])
                taken += PART // 2

        feeding = asyncio.ensure_future(feed())
        while looks < 3:  # the sink waits for its name, looking at the row now and then;
            await asyncio.sleep(0.005)  # the feeding yields only once no buffer is free
        assert not feeding.done() and s3.client.parts == {}
        assert taken <= (IN_FLIGHT + 1) * PART
        named.set()
        await feeding
        return await sink.finish()

    assert run_coroutine(run()) == len(data)
    assert sorted(s3.client.parts) == list(range(1, 3 * IN_FLIGHT + 1))
    assert b"".join(s3.client.parts[n]["data"] for n in sorted(s3.client.parts)) == data
    assert len(done) == 1


def test_an_unnamed_upload_whose_row_went_ends_without_sending() -> None:
    """The naming request found the blob stored for the key (or the upload was swept): the row
    is gone, and the stream ends without one request to the object store."""
    data = os.urandom(4 * PART)
    s3 = _S3()

    def lookup() -> StreamTarget | None:
        raise NotFoundError("gone")

    async def run() -> None:
        sink = StreamSink(s3, len(data), PART, lookup)  # type: ignore[arg-type]
        await _stream(sink, data, PART)

    with pytest.raises(NotFoundError):
        run_coroutine(run())
    assert s3.client.parts == {}


@pytest.mark.parametrize("route", ["content", "part"])
def test_a_request_cancelled_while_what_it_writes_into_opens_releases_it(route: str) -> None:
    """``PUT .../content`` opens its stream, ``PUT .../parts/{n}`` its part's writer, in a
    worker thread; a handler cancelled meanwhile (the thread runs on) must still release what
    the thread opens: a stream's place among the uploads a process holds waiting for their
    names (``MAX_WAITING``; session 13's review), a part's descriptor and its shared lock on the
    spool file (else the upload's ``complete`` is refused for the life of the process; session
    15). Fails on the old code: nothing releases them."""
    from cairn.server import _routes_blobs

    opening, go_on, released = threading.Event(), threading.Event(), threading.Event()
    count: list[int] = []

    class Opened:
        def released(self) -> None:  # a stream's
            count.append(1)
            released.set()

        abort = released  # a part writer's

    class Svc:
        def open_upload_stream(self, upload_id: str) -> Opened:
            opening.set()
            go_on.wait(30)  # a guard only: the handler is cancelled first
            return Opened()

        def open_upload_part(self, upload_id: str, number: int) -> Opened:
            return self.open_upload_stream(upload_id)

    async def cancelled() -> None:
        handler = (
            _routes_blobs.upload_content("u", None, Svc())  # type: ignore[arg-type]
            if route == "content"
            else _routes_blobs.upload_part("u", 0, None, Svc())  # type: ignore[arg-type]
        )
        task = asyncio.ensure_future(handler)
        await asyncio.get_running_loop().run_in_executor(None, opening.wait, 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        go_on.set()

    run_coroutine(cancelled())
    assert released.wait(30)  # a bound on a hang: the thread released what it opened
    assert count == [1]
