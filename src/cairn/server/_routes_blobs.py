"""Routes: blob presence, batches both ways, single blobs, uploads in parts or presigned."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

from fastapi import Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel, Field

from cairn.core import check_digest
from cairn.errors import BlobNotFoundError
from cairn.server._backend import Backend
from cairn.server._batches import (
    FETCH_DIGESTS,
    URL_DIGESTS,
    fetch_body,
    fetch_plan,
    receive_batch,
)
from cairn.server._common import B, Svc, new_router
from cairn.server._stream_upload import receive_stream
from cairn.service import BATCH_TYPE, check_digests, parse_range

MAX_DIGESTS = 50_000
T = TypeVar("T")

router = new_router()


# -- blobs ----------------------------------------------------------------------------------------


class DigestsIn(BaseModel):
    digests: list[str]


@router.post("/blobs/missing", summary="Which of these blobs the key would have to upload")
def missing_blobs(body: DigestsIn, svc: Svc) -> dict[str, Any]:
    return {"missing": svc.missing_blobs(check_digests(body.digests, MAX_DIGESTS))}


@router.post(
    "/blobs/batch",
    summary="Upload blobs, many per request (application/vnd.cairn.blobs), each verified",
)
async def upload_batch(request: Request, svc: Svc, b: B) -> dict[str, Any]:
    # Read as it arrives; each group of blobs verified, then stored; all recorded as this key's.
    batch = svc.batch_upload()  # refused before the body is read
    return {"stored": await receive_batch(request, batch, b.config.max_batch_bytes)}


@router.post(
    "/blobs/fetch",
    summary="Blobs up to 8 MiB, many per answer (application/vnd.cairn.blobs), in the order"
    " asked; others are left out",
)
def fetch_blobs(body: DigestsIn, svc: Svc, b: B) -> Response:
    digests = list(dict.fromkeys(check_digests(body.digests, FETCH_DIGESTS)))
    allowed = svc.readable_blobs(digests)
    chosen = fetch_plan(b.blobs, [d for d in digests if d in allowed])
    return StreamingResponse(fetch_body(b.blobs, chosen), media_type=BATCH_TYPE)


@router.post(
    "/blobs/urls",
    summary="Presigned GETs of blobs kept in the object store (S3 stores; others answer none)",
)
def blob_urls(body: DigestsIn, svc: Svc, b: B) -> dict[str, Any]:
    digests = list(dict.fromkeys(check_digests(body.digests, URL_DIGESTS)))
    allowed = svc.readable_blobs(digests)
    found = b.blobs.presigned_gets([d for d in digests if d in allowed])
    return {
        "object_store": b.transfers.s3 is not None,
        "urls": {d: {"url": url, "size": n} for d, (url, n) in found.items()},
    }


RANGE_CHUNK = 1 << 20


def _range_response(b: Backend, digest: str, header: str) -> Response | None:
    """The answer to a ``Range`` request: 206 with the bytes asked for (read in place, never the
    whole blob), 416 past the end, a redirect to a presigned GET of that range on S3; None
    where the header is not one range of bytes (the whole blob is sent then, as HTTP allows)."""
    blobs = b.blobs
    size = blobs.size(digest)
    if size is None:
        raise BlobNotFoundError(f"blob {digest} is missing from the store")
    asked = parse_range(header, size)
    if asked is None:
        return None
    start, length = asked
    if length == 0:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    url = blobs.presigned_url(digest, start, length)
    if url is not None:
        return RedirectResponse(url, status_code=307)

    def chunks() -> Iterator[bytes]:
        for at in range(start, start + length, RANGE_CHUNK):
            yield blobs.get_range(digest, at, min(RANGE_CHUNK, start + length - at))

    headers = {
        "Content-Range": f"bytes {start}-{start + length - 1}/{size}",
        "Content-Length": str(length),
        "Accept-Ranges": "bytes",
    }
    media = "application/octet-stream"
    if length <= RANGE_CHUNK:
        return Response(blobs.get_range(digest, start, length), 206, headers, media)
    return StreamingResponse(chunks(), 206, headers, media)


@router.get("/blobs/{digest}", summary="A blob's content (or a redirect to the object store)")
def get_blob(
    digest: str, svc: Svc, b: B, byte_range: Annotated[str | None, Header(alias="range")] = None
) -> Response:
    svc.check_blob(check_digest(digest))
    if byte_range is not None and (ranged := _range_response(b, digest, byte_range)) is not None:
        return ranged
    blobs = b.blobs
    path = blobs.local_path(digest)
    if path is not None:
        return FileResponse(path, media_type="application/octet-stream")
    url = blobs.presigned_url(digest)
    if url is not None:
        return RedirectResponse(url, status_code=307)
    return Response(blobs.get(digest), media_type="application/octet-stream")


class UploadIn(BaseModel):
    digest: str | None = None  # None: streamed before the client has it (named later)
    size: int = Field(ge=0, le=5 << 40)
    modes: list[str] = Field(default_factory=list, max_length=8)


class NameIn(BaseModel):
    digest: str


@router.post("/uploads", summary="Begin uploading a large blob (in parts, or presigned to S3)")
def begin_upload(body: UploadIn, svc: Svc) -> dict[str, Any]:
    digest = None if body.digest is None else check_digest(body.digest)
    return svc.begin_upload(digest, body.size, body.modes)


@router.post(
    "/uploads/{upload_id}/name",
    summary="Name the blob of an upload begun without its digest: go on, or stop (stored)",
)
def name_upload(upload_id: str, body: NameIn, svc: Svc) -> dict[str, Any]:
    return svc.name_upload(upload_id, check_digest(body.digest))


@router.get("/uploads/{upload_id}", summary="An upload's state: which parts arrived")
def upload_status(upload_id: str, svc: Svc) -> dict[str, Any]:
    return svc.upload_status(upload_id)


@router.put("/uploads/{upload_id}/parts/{number}", summary="Send one part of an upload")
async def upload_part(upload_id: str, number: int, request: Request, svc: Svc) -> dict[str, Any]:
    writer = await _opened(lambda: svc.open_upload_part(upload_id, number), lambda w: w.abort())
    try:
        # Each chunk goes to the page cache as it arrives (microseconds: no thread hop).
        async for chunk in request.stream():
            if chunk:
                writer.write(chunk)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return {}


@router.put(
    "/uploads/{upload_id}/content",
    summary="Send an upload's whole content (mode 'stream'): verified as it arrives and stored",
)
async def upload_content(upload_id: str, request: Request, svc: Svc) -> dict[str, Any]:
    sink = await _opened(lambda: svc.open_upload_stream(upload_id), lambda s: s.released())
    done = await receive_stream(sink, request.stream())  # which releases it, however it ends
    await run_in_threadpool(svc.record_upload, sink.digest)
    return done


async def _opened(open_it: Callable[[], T], release: Callable[[T], None]) -> T:
    """``open_it()`` in a worker thread. A handler cancelled meanwhile (the thread runs on)
    releases what the thread opens, which was otherwise held for the life of the process: a
    stream's place among the uploads waiting for their names (``MAX_WAITING``), a part's
    descriptor and its lock on the spool file (the upload could never be completed)."""
    lock = threading.Lock()
    held: list[T] = []
    gave_up = False

    def opening() -> T:
        opened = open_it()
        with lock:
            if not gave_up:
                held.append(opened)
                return opened
        release(opened)  # the handler is gone
        return opened

    try:
        return await run_in_threadpool(opening)
    except BaseException:
        with lock:
            gave_up = True
        for opened in held:
            release(opened)
        raise


class PartUrlIn(BaseModel):
    checksum: str = Field(max_length=64)


@router.post(
    "/uploads/{upload_id}/parts/{number}/url",
    summary="A presigned URL for one part (S3 stores), bound to the part's SHA-256",
)
def upload_part_url(upload_id: str, number: int, body: PartUrlIn, svc: Svc) -> dict[str, Any]:
    return svc.upload_part_url(upload_id, number, body.checksum)


@router.post("/uploads/{upload_id}/complete", summary="Verify and store an upload's blob")
def complete_upload(upload_id: str, svc: Svc) -> dict[str, Any]:
    digest, size = svc.complete_upload(upload_id)
    return {"digest": digest, "size": size}
