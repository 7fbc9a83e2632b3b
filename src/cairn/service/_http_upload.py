"""Uploads to a cairn server: presence asked per batch, small blobs many per request, large
files in parallel resumable parts (through the server, or straight to S3 by presigned URL).

``store_blobs`` asks once per batch which blobs the server lacks, then sends those many per
request (``application/vnd.cairn.blobs``), several requests at a time. Large files go through
``/uploads``: to a server on S3 in one request that it verifies as it arrives and stores in
parts, several at a time (``stream``; what S3 kept of an interrupted attempt is not stored
again), sent while the file is hashed (the upload is begun with its size alone and named by a
second request once the hash is done: ``_http_naming.Naming``); to a local-disk server in parts, several at a time, a part that failed sent again alone
and the parts the server already has not sent again; smaller blobs to S3 by a presigned URL
bound to their SHA-256. An upload the server lost is begun again. See docs/design.md.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cairn.core import counting_reads, digest_bytes, transfer
from cairn.errors import (
    CommError,
    ConflictError,
    DigestMismatchError,
    NotFoundError,
    ValidationError,
)
from cairn.service._http_client import HttpClient, seg
from cairn.service._http_naming import Naming, Stopped
from cairn.service._wire import (
    BATCH_TYPE,
    UNNAMED_FROM,
    UNNAMED_UP_TO,
    packed_chunks,
    packed_size,
)
from cairn.storage import CHUNK, SMALL_LIMIT, BlobInfo, hash_file

BATCH_BYTES = 8 << 20  # one request of small blobs
MISSING_BATCH = 20_000  # digests per presence check
_BATCH_THREADS = 4  # batch requests in flight at once
_UPLOAD_ATTEMPTS = 3  # an upload the server lost (swept, or gone with its state) begins again
AHEAD = 2  # parts sent before the name; then the hash has the cores until it is done
_log = logging.getLogger("cairn")


class Uploader:
    """The upload half of ``HttpService`` (the Service protocol's ``store_*``)."""

    def __init__(self, client: HttpClient, threads: int) -> None:
        self.client = client
        self.threads = threads  # parts in flight at once
        # Whether the server takes an upload before its digest (None: not asked yet; False:
        # it said no, an older server or one that is not on S3, so files are hashed first).
        self.unnamed: bool | None = None

    def missing_blobs(self, digests: Sequence[str]) -> list[str]:
        wanted = list(dict.fromkeys(digests))
        missing: list[str] = []
        for start in range(0, len(wanted), MISSING_BATCH):
            chunk = wanted[start : start + MISSING_BATCH]
            answer = self.client.call("POST", "/blobs/missing", json={"digests": chunk})
            missing.extend(answer["missing"])
        return missing

    def store_blobs(
        self, items: Sequence[tuple[str, bytes]], *, known_missing: bool = False
    ) -> None:
        unique = dict(items)
        if not unique:
            return
        todo = list(unique.items())
        if not known_missing:
            missing = set(self.missing_blobs(list(unique)))
            todo = [(d, b) for d, b in todo if d in missing]
        big = [(d, b) for d, b in todo if len(b) >= BATCH_BYTES]
        batches: list[list[tuple[str, bytes]]] = [[]]
        size = 0
        for d, b in todo:
            if len(b) >= BATCH_BYTES:
                continue
            if size >= BATCH_BYTES:  # full: a request holds at most one blob more
                batches.append([])
                size = 0
            batches[-1].append((d, b))
            size += len(b) + 40
        batches = [b for b in batches if b]

        def send(batch: list[tuple[str, bytes]]) -> None:
            # Packed as it is sent (a piece at a time), not copied whole: the blobs are held
            # once, by the caller, however many requests are in flight.
            self.client.send(
                "POST",
                "/blobs/batch",
                headers={"Content-Type": BATCH_TYPE, "Content-Length": str(packed_size(batch))},
                body_factory=lambda: packed_chunks(batch, CHUNK),
            )

        if len(batches) == 1:
            send(batches[0])
        elif batches:
            with ThreadPoolExecutor(_BATCH_THREADS) as pool:
                for _ in pool.map(send, batches):
                    pass
        for d, b in big:
            self.upload(d, len(b), _slicer(b), None)

    def store_file(self, path: str) -> BlobInfo:
        hashed: tuple[str, int] | None = None
        if self.unnamed is not False:
            info = self._store_unnamed(path)
            if isinstance(info, BlobInfo):
                return info
            hashed = info  # hashed while the server was asked (it wants the digest first)
        digest, size = hashed or hash_file(path)
        if size < SMALL_LIMIT:
            with open(path, "rb") as f:
                data = f.read()
            if digest_bytes(data) != digest:
                raise DigestMismatchError(f"file {path} changed while it was read")
            self.store_blobs([(digest, data)])
            return BlobInfo(digest, size)
        if self.missing_blobs([digest]):
            self.upload_file(path, digest, size)
        return BlobInfo(digest, size)

    def store_blob_file(
        self, path: str, digest: str, size: int, *, sent: Callable[[], None] | None = None
    ) -> None:
        # Not hashed here: the server hashes every upload before it stores it (422 otherwise).
        if size < SMALL_LIMIT:
            with open(path, "rb") as f:
                self.store_blobs([(digest, f.read())])
            if sent is not None:
                sent()  # sent and stored in one request
            return
        self.upload_file(path, digest, size, hashed_here=False, sent=sent)

    def _store_unnamed(self, path: str) -> BlobInfo | tuple[str, int] | None:
        """Send a large file while it is hashed: begin the upload with its size alone, stream
        the content, and name the blob (``Naming``, a thread) once hashed; the server stops
        the stream if the key has the blob already (or has an interrupted upload of it to
        resume: then the file is sent again named). The hash starts before the begin is
        asked (the name waits for it; on an older server the first part to S3 too). When the
        server wants the digest first: the digest and size hashed meanwhile; None: the file is
        small, hash first."""
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            if not UNNAMED_FROM <= size <= UNNAMED_UP_TO:
                return None
            naming = Naming(self.client, None, fd, size)
            naming.start()
            plan: dict[str, Any] = {}
            try:
                plan = self.client.call(
                    "POST", "/uploads", json={"size": size, "modes": ["stream"]}
                )
            except ValidationError:  # an older server (no digest: 400), or not on S3
                self.unnamed = False
            except ConflictError:  # busy with other unnamed uploads (409): this one named
                pass
            except BaseException:
                naming.abandon()
                naming.join()
                raise
            if plan.get("mode") != "stream" or plan.get("unnamed") is not True:
                if plan:  # a server that did not take it as asked: digest first
                    self.unnamed = False
                return naming.hashed()
            try:  # an answer without its id or part size abandons the hash too, joined here
                upload, part_size = _begun_as(plan)
                self.unnamed = True
                # A server that sends the parts to S3 at once (``keyfree``: at a key of their
                # own) takes the whole stream beside the hash; else two parts, then the name.
                naming.begun(upload, lead=size if plan.get("keyfree") else AHEAD * part_size)
                sent = self._send_unnamed(path, fd, size, upload, naming)
            except DigestMismatchError:
                naming.join()
                naming.result()  # the naming's own error, if it failed
                raise _changed(path, "its content is not what was hashed") from None
            except BaseException:
                naming.abandon()
                raise
            finally:
                naming.join()
            digest = naming.result()
            if not sent and not naming.stored and self.missing_blobs([digest]):
                # The server lost the upload (swept, or gone with its state): begin it again,
                # named (it takes up what S3 kept of this one).
                self.upload_file(path, digest, size)
            return BlobInfo(digest, size)
        finally:
            os.close(fd)

    def _send_unnamed(self, path: str, fd: int, size: int, upload: str, naming: Naming) -> bool:
        """The content of an upload begun before its digest; False when it stopped: the blob
        is stored already (``naming.stored``), the naming failed, or the server lost it."""
        read = _reader(fd, path, "it got shorter while it was sent")
        try:
            with transfer("uploading", size, path) as advance:
                reads = counting_reads(read, advance)
                self.client.send(
                    "PUT",
                    f"{upload}/content",
                    headers={"Content-Length": str(size)},
                    body_factory=lambda: naming.until_stopped(_read_chunks(reads, 0, size)),
                )
            return True
        except Stopped:
            return False
        except (NotFoundError, ValidationError, ConflictError):
            # Gone (stored: the naming's answer may come later; or lost), or refused (a server
            # holding as many unnamed uploads as it takes: 409): sent named, once hashed.
            naming.join()
            return False

    def upload_file(
        self,
        path: str,
        digest: str,
        size: int,
        *,
        hashed_here: bool = True,
        sent: Callable[[], None] | None = None,
    ) -> None:
        """Upload a file in parts. When this client hashed it (``hashed_here``), a digest the
        server refuses means the file changed since: say so; else the digest was only claimed
        and the `DigestMismatchError` stands. ``sent``: see ``upload``."""
        fd = os.open(path, os.O_RDONLY)
        read = _reader(fd, path, "it is shorter than when it was hashed")
        try:
            with transfer("uploading", size, path) as advance:
                self.upload(digest, size, counting_reads(read, advance), path, sent=sent)
        except DigestMismatchError:
            if not hashed_here:
                raise
            raise _changed(path, "its content is not what was hashed") from None
        finally:
            os.close(fd)

    def upload(
        self,
        digest: str,
        size: int,
        read: Callable[[int, int], bytes],
        path: str | None,
        *,
        sent: Callable[[], None] | None = None,
    ) -> None:
        """Begin (or take up: the server hands back this key's open upload of the same blob,
        with the parts it kept), send what is missing, complete. An upload the server no longer
        knows (swept as abandoned, or lost with a server's state) is begun again. ``sent`` is
        called (once) when the content has left, before the server has verified and stored it
        (a local-disk server hashes and fsyncs the whole at ``complete``; one on S3 completes
        the multipart upload when the stream ends): the caller's other requests take the
        server's time then, not the content's."""
        if sent is not None:
            sent = _once(sent)
        for attempt in range(_UPLOAD_ATTEMPTS):
            plan = self.client.call(
                "POST", "/uploads", json={"digest": digest, "size": size, "modes": ["stream"]}
            )
            try:
                self._send_upload(plan, size, read, sent)
                return
            except NotFoundError:
                if not self.missing_blobs([digest]):
                    return  # completed: only the answer was lost
                if attempt == _UPLOAD_ATTEMPTS - 1:
                    raise
                _log.warning(
                    "cairn: the server at %s lost the upload of %s; beginning it again",
                    self.client.base_url,
                    path or digest,
                )

    def _send_upload(
        self,
        plan: Mapping[str, Any],
        size: int,
        read: Callable[[int, int], bytes],
        sent: Callable[[], None] | None = None,
    ) -> None:
        upload = f"/uploads/{seg(plan['id'])}"
        if plan["mode"] == "stream":
            # From the first byte, read as it is sent: the server hashes it all to verify it.
            self.client.send(
                "PUT",
                f"{upload}/content",
                headers={"Content-Length": str(size)},
                body_factory=lambda: _then(_read_chunks(read, 0, size), sent),
            )
            return
        if plan["mode"] == "presigned":
            self._put_presigned(plan, size, read)
        else:
            self._put_parts(plan, size, read)
        if sent is not None:
            sent()
        try:
            self.client.call("POST", f"{upload}/complete")
        except ValidationError:
            # Parts the server or the object store did not keep: send those again, once.
            state = self.client.call("GET", upload)
            if state["mode"] == "presigned" or len(state.get("parts_done", ())) >= -(
                -size // int(state["part_size"])
            ):
                raise
            self._put_parts(state, size, read)
            self.client.call("POST", f"{upload}/complete")

    def _put_presigned(
        self, plan: Mapping[str, Any], size: int, read: Callable[[int, int], bytes]
    ) -> None:
        def body() -> Iterator[bytes]:
            off = 0
            while off < size:
                chunk = read(off, min(CHUNK * 8, size - off))
                if not chunk:
                    break
                off += len(chunk)
                yield chunk

        headers = {**plan.get("headers", {}), "Content-Length": str(size)}
        self.client.send("PUT", plan["url"], plain=True, headers=headers, body_factory=body)

    def _put_parts(
        self, plan: Mapping[str, Any], size: int, read: Callable[[int, int], bytes]
    ) -> None:
        part_size = int(plan["part_size"])
        count = max(1, -(-size // part_size))
        done = set(plan.get("parts_done", []))
        upload = f"/uploads/{seg(plan['id'])}"

        presigned = plan["mode"] == "presigned-parts"

        def send(n: int) -> None:
            off = n * part_size
            length = min(part_size, size - off)
            headers = {"Content-Length": str(length)}
            if not presigned:  # read as it is sent: no part-sized buffer
                self.client.send(
                    "PUT",
                    f"{upload}/parts/{n}",
                    headers=headers,
                    body_factory=lambda: _read_chunks(read, off, length),
                )
                return
            # Straight to S3, by a URL bound to the part's SHA-256: S3 refuses other bytes. Read
            # in chunks, so that progress moves while a large part is read.
            data = b"".join(_read_chunks(read, off, length))
            checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
            target = self.client.call(
                "POST", f"{upload}/parts/{n}/url", json={"checksum": checksum}
            )
            headers.update(target["headers"])
            self.client.send(
                "PUT",
                target["url"],
                plain=True,
                headers=headers,
                body_factory=lambda: _chunks(data),
            )

        todo = [n for n in range(count) if n not in done]
        threads = self.threads
        if len(todo) <= 1 or threads == 1:
            for n in todo:
                send(n)
            return
        # Each part is retried alone (``HttpClient.send``); at most ``threads`` parts are read
        # at once.
        with ThreadPoolExecutor(threads) as pool:
            for _ in pool.map(send, todo):
                pass


def _reader(fd: int, path: str, short: str) -> Callable[[int, int], bytes]:
    """``read(offset, n)`` of the open file ``path``: ``n`` bytes, or the file changed
    (``short`` says how)."""

    def read(off: int, n: int) -> bytes:
        data = os.pread(fd, n, off)
        if len(data) != n:
            raise _changed(path, short)
        return data

    return read


def _changed(path: str, how: str) -> ValidationError:
    return ValidationError(
        f"file {path} changed while cairn was uploading it ({how}); add it again once it is"
        " complete"
    )


def _chunks(data: bytes) -> Iterator[bytes]:
    """A large body in 1 MiB pieces: httpcore re-slices what one send() did not take, which
    for one 32 MiB bytes object copies quadratically."""
    view = memoryview(data)
    for start in range(0, len(view), CHUNK):
        yield bytes(view[start : start + CHUNK])


def _read_chunks(read: Callable[[int, int], bytes], off: int, length: int) -> Iterator[bytes]:
    end = off + length
    while off < end:
        chunk = read(off, min(CHUNK, end - off))
        if not chunk:
            raise CommError("the file got shorter while it was uploaded; add it again")
        off += len(chunk)
        yield chunk


def _then(chunks: Iterator[bytes], done: Callable[[], None] | None) -> Iterator[bytes]:
    """``chunks``, then ``done()`` once the last one was taken (the body has left)."""
    yield from chunks
    if done is not None:
        done()


def _once(fn: Callable[[], None]) -> Callable[[], None]:
    """``fn``, called the first time only (a body sent again, an upload begun again)."""
    lock = threading.Lock()
    called = False

    def once() -> None:
        nonlocal called
        with lock:
            if called:
                return
            called = True
        fn()

    return once


def _slicer(data: bytes) -> Callable[[int, int], bytes]:
    return lambda off, n: data[off : off + n]


def _begun_as(plan: Mapping[str, Any]) -> tuple[str, int]:
    """The upload path and part size of a server's answer to an unnamed begin; an answer
    without them is the server's fault, said so (not a ``KeyError`` from deep inside)."""
    try:
        upload, part_size = f"/uploads/{seg(str(plan['id']))}", int(plan["part_size"])
    except (KeyError, TypeError, ValueError):
        raise CommError(
            "the server answered an upload's begin without its id or part size: "
            "is it a cairn server of a compatible version?"
        ) from None
    if part_size <= 0:
        raise CommError(f"the server answered an upload's begin with part size {part_size}")
    return upload, part_size
