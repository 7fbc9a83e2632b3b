"""HttpService: the Service protocol over a cairn server's REST API (``CAIRN_BASE_URL``).

One ``httpx.Client`` keeps connections alive across calls and threads. Calls that fail on the way
(connection refused or reset, a server that died mid-request, 502/503/504) are retried with
backoff for about half a minute: every call of the protocol is safe to repeat (a repeated commit
finds its own version by digest, an upsert overwrites itself, a repeated part rewrites the same
bytes).

Transfers: ``store_blobs`` asks once per batch which blobs the server lacks, then sends those
many per request (``application/vnd.cairn.blobs``), several requests at a time. Large files go
through ``/uploads``: straight to S3 by presigned URL (with the SHA-256 for S3 to check), or to
the server in parts, several at a time; a part that failed is sent again, and the parts the server
already has are not. Downloads land in the download cache (``$CAIRN_CACHE_DIR/blobs``, see
docs/design.md), verified, and are copied out from there, verified again.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import httpx

from cairn.core import (
    Advance,
    CollectionRecord,
    RegistryRecord,
    RunRecord,
    VersionRecord,
    blob_path_parts,
    check_digest,
    check_json_value,
    counting_reads,
    digest_bytes,
    digest_from_hasher,
    new_hasher,
    transfer,
    validate_project,
)
from cairn.errors import (
    CairnError,
    CommError,
    DigestMismatchError,
    NotFoundError,
    ValidationError,
)
from cairn.service._protocol import (
    CommitRequest,
    CommitResult,
    FinishRequest,
    ImportRequest,
    StageRequest,
    VersionExport,
)
from cairn.service._search import SearchRequest, SearchResult
from cairn.service._wire import (
    API,
    BATCH_TYPE,
    changes_to_json,
    collection_from_json,
    error_from_body,
    export_from_json,
    import_to_json,
    key_id_of,
    pack_blobs,
    registry_from_json,
    run_from_json,
    run_to_json,
    search_request_to_json,
    search_result_from_json,
    unpack_blobs,
    version_from_json,
)
from cairn.storage import (
    SMALL_LIMIT,
    BlobInfo,
    check_range,
    hash_file,
    hash_stream,
    range_header,
)

CHUNK = 1 << 20
BATCH_BYTES = 8 << 20  # one request of small blobs
MISSING_BATCH = 20_000  # digests per presence check
PREFETCH_BATCH = 1024  # digests per download request (the server answers up to 16 MiB)
URL_BATCH = 4096  # presigned URLs per request
RANGE_PART = 16 << 20  # a large blob comes down in ranges of this size, several at a time
_THREADS = 4
_UPLOAD_ATTEMPTS = 3  # an upload the server lost (swept, or gone with its state) begins again


def transfer_threads() -> int:
    """Parts (or batches, or ranges) in flight at once: ``CAIRN_TRANSFER_THREADS``, else 4."""
    value = os.environ.get("CAIRN_TRANSFER_THREADS", "")
    if not value:
        return _THREADS
    if not value.isdigit() or not 1 <= int(value) <= 64:
        raise ValidationError(
            f"CAIRN_TRANSFER_THREADS must be a number from 1 to 64, not {value!r}"
        )
    return int(value)


_RETRIES = 12  # backoff 0.2 s doubling to 5 s, within RETRY_SECONDS in all
RETRY_SECONDS = 45.0  # a call is given up after this long (a catalog restart takes seconds)
_NOTICE_AFTER = 2.0  # waiting longer than this is said on stderr, once per call
_log = logging.getLogger("cairn")
_RETRY_STATUS = (502, 503, 504)


def _seg(value: str) -> str:
    """One path segment, quoted. A segment of dots only would be resolved away by URL rules
    (``/a/../b`` is ``/b``), reaching another route: refused, as the names it stands for are."""
    if not value.strip("."):
        raise ValidationError(f"{value!r} cannot be sent as a name: it is empty or only dots")
    return quote(value, safe="")


def _json_body(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _changed(path: str, how: str) -> ValidationError:
    return ValidationError(
        f"file {path} changed while cairn was uploading it ({how}); add it again once it is"
        " complete"
    )


def _copy_verified(src: str, dest: str, digest: str) -> None:
    hasher = new_hasher()
    with (
        open(src, "rb") as fin,
        open(dest, "wb") as fout,
        transfer("copying", os.fstat(fin.fileno()).st_size, None) as advance,
    ):
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while n := fin.readinto(buf):
            hasher.update(view[:n])
            fout.write(view[:n])
            advance(n)
    if digest_from_hasher(hasher) != digest:
        os.unlink(dest)
        raise DigestMismatchError(f"cached blob {digest} at {src} is damaged (digest mismatch)")


class DownloadCache:
    """``<cache_dir>/blobs/sha256/ab/<rest>`` (``cairn.core.blob_path``): one file per blob;
    partial files in ``tmp/``."""

    def __init__(self, cache_dir: str) -> None:
        self.root = os.path.join(os.path.abspath(cache_dir), "blobs")
        self.tmp = os.path.join(self.root, "tmp")
        self._dirs: set[str] = set()  # made already: a mkdir that fails costs as much as one

    def _makedirs(self, path: str) -> None:
        if path not in self._dirs:
            os.makedirs(path, exist_ok=True)
            self._dirs.add(path)

    def path_of(self, digest: str) -> str:
        return os.path.join(self.root, *blob_path_parts(digest))

    def lookup(self, digest: str) -> str | None:
        path = self.path_of(digest)
        try:
            os.utime(path)  # least recently used goes first when the cache is trimmed
        except FileNotFoundError:
            return None
        return path

    def partial(self) -> str:
        self._makedirs(self.tmp)
        return os.path.join(self.tmp, f"{uuid.uuid4().hex}.partial")

    def install(self, tmp: str, digest: str) -> str:
        path = self.path_of(digest)
        self._makedirs(os.path.dirname(path))
        os.replace(tmp, path)
        return path


class HttpService:
    """A Service that calls a cairn server."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        cache_dir: str,
        *,
        transport: httpx.BaseTransport | None = None,
        retries: int = _RETRIES,
        retry_seconds: float = RETRY_SECONDS,
        notice_after: float = _NOTICE_AFTER,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"User-Agent": "cairn-http"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        timeout = httpx.Timeout(300.0, connect=10.0)
        self._http = httpx.Client(
            base_url=self.base_url + API,
            headers=headers,
            timeout=timeout,
            limits=limits,
            transport=transport,
        )
        # Presigned object-store URLs carry their own signature: never send the API key there.
        self._plain = httpx.Client(timeout=timeout, limits=limits)
        self._cache = DownloadCache(cache_dir)
        self._retries = retries
        self._retry_seconds = retry_seconds
        self._notice_after = notice_after
        self._info: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._no_urls = False  # the server has no presigned GETs to give (a local store)

    # -- plumbing ------------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> None:
        time.sleep(min(5.0, 0.2 * 2**attempt) * (0.5 + random.random() / 2))

    def _wait(self, attempt: int, started: float, why: str, notice: bool) -> bool:
        """Wait before another attempt, or False when the time for retries is spent; with
        ``notice``, say on stderr what it waits for."""
        if attempt >= self._retries or time.monotonic() - started > self._retry_seconds:
            return False
        if notice:
            _log.warning(
                "cairn: waiting for the server at %s (%s); retrying for up to %d s",
                self.base_url,
                why,
                self._retry_seconds,
            )
        self._backoff(attempt)
        return True

    def _send(
        self, client: httpx.Client, method: str, url: str, *, idempotent: bool = True, **kw: Any
    ) -> httpx.Response:
        """One request, retried on connection failures and 502/503/504 for at most
        ``RETRY_SECONDS`` (an error status in ``accept`` is returned instead of raised). A call
        that is not ``idempotent`` (one that creates a key) is retried only when it never reached
        the server."""
        body_factory: Callable[[], Any] | None = kw.pop("body_factory", None)
        accept: tuple[int, ...] = kw.pop("accept", ())
        if isinstance(kw.get("json"), dict):
            # What the server would refuse (NaN, 1e999, ...) is refused here alike, field named.
            for field, value in kw["json"].items():
                if field not in ("changes", "digests"):  # checked row by row by the server
                    check_json_value(value, field)
        started = time.monotonic()
        noticed = False
        attempt = 0
        while True:
            if body_factory is not None:
                kw["content"] = body_factory()
            try:
                resp = client.request(method, url, **kw)
            except httpx.TransportError as exc:
                never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                why = f"{type(exc).__name__}: {exc!s}"
                notice = not noticed and time.monotonic() - started > self._notice_after
                noticed = noticed or notice
                if not (idempotent or never_sent) or not self._wait(attempt, started, why, notice):
                    raise CommError(
                        f"cannot reach the cairn server at {self.base_url}: {exc!s}"
                        " (is it running? is CAIRN_BASE_URL right?)"
                    ) from None
            else:
                if resp.status_code not in _RETRY_STATUS or not idempotent:
                    if resp.status_code >= 400 and resp.status_code not in accept:
                        raise error_from_body(resp.status_code, _json_body(resp), self.base_url)
                    return resp
                body = _json_body(resp)
                err = body.get("error") if isinstance(body, dict) else None
                why = f"{resp.status_code}: {err.get('message') if isinstance(err, dict) else ''}"
                notice = not noticed and time.monotonic() - started > self._notice_after
                noticed = noticed or notice
                if not self._wait(attempt, started, why.rstrip(": "), notice):
                    raise error_from_body(resp.status_code, body, self.base_url)
            attempt += 1

    def _call(self, method: str, path: str, *, idempotent: bool = True, **kw: Any) -> Any:
        resp = self._send(self._http, method, path, idempotent=idempotent, **kw)
        return resp.json() if resp.content else None

    def _whoami(self) -> dict[str, Any]:
        if self._info is None:
            self._info = dict(self._call("GET", "/whoami"))
        return self._info

    def _project(self, entity: str, project: str) -> str:
        validate_project(entity, "entity")
        validate_project(project)
        return f"/projects/{_seg(entity)}/{_seg(project)}"

    # -- identity ------------------------------------------------------------------------------

    @property
    def default_entity(self) -> str:
        return str(self._whoami()["entity"])

    @property
    def location(self) -> str:
        return self.base_url

    @property
    def is_local(self) -> bool:
        return False

    def close(self) -> None:
        self._http.close()
        self._plain.close()

    # -- runs ----------------------------------------------------------------------------------

    def start_run(self, run: RunRecord) -> RunRecord:
        body = run_to_json(run)
        return run_from_json(
            self._call("POST", self._project(run.entity, run.project) + "/runs", json=body)
        )

    def finish_run(
        self, entity: str, project: str, run_id: str, state: str, config: Mapping[str, Any] | None
    ) -> None:
        path = f"{self._project(entity, project)}/runs/{_seg(run_id)}/finish"
        self._call(
            "POST", path, json={"state": state, "config": None if config is None else dict(config)}
        )

    def get_run(self, entity: str, project: str, run_id: str) -> RunRecord:
        return run_from_json(
            self._call("GET", f"{self._project(entity, project)}/runs/{_seg(run_id)}")
        )

    def run_versions(
        self, entity: str, project: str, run_id: str, role: str
    ) -> list[VersionRecord]:
        path = f"{self._project(entity, project)}/runs/{_seg(run_id)}/versions"
        return [version_from_json(v) for v in self._call("GET", path, params={"role": role})]

    # -- blobs: uploads ----------------------------------------------------------------------

    def missing_blobs(self, digests: Sequence[str]) -> list[str]:
        wanted = list(dict.fromkeys(digests))
        missing: list[str] = []
        for start in range(0, len(wanted), MISSING_BATCH):
            chunk = wanted[start : start + MISSING_BATCH]
            missing.extend(self._call("POST", "/blobs/missing", json={"digests": chunk})["missing"])
        return missing

    def store_blobs(self, items: Sequence[tuple[str, bytes]]) -> None:
        unique = dict(items)
        if not unique:
            return
        missing = set(self.missing_blobs(list(unique)))
        todo = [(d, unique[d]) for d in unique if d in missing]
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
            body = pack_blobs(batch)
            self._send(
                self._http,
                "POST",
                "/blobs/batch",
                headers={"Content-Type": BATCH_TYPE, "Content-Length": str(len(body))},
                body_factory=lambda: _chunks(body),
            )

        if len(batches) == 1:
            send(batches[0])
        elif batches:
            with ThreadPoolExecutor(_THREADS) as pool:
                for _ in pool.map(send, batches):
                    pass
        for d, b in big:
            self._upload(d, len(b), _slicer(b), None)

    def store_file(self, path: str, *, link: bool = False) -> BlobInfo:
        digest, size = hash_file(path)
        if size < SMALL_LIMIT:
            with open(path, "rb") as f:
                data = f.read()
            if digest_bytes(data) != digest:
                raise DigestMismatchError(f"file {path} changed while it was read")
            self.store_blobs([(digest, data)])
            return BlobInfo(digest, size)
        if self.missing_blobs([digest]):
            self._upload_file(path, digest, size)
        return BlobInfo(digest, size)

    def store_blob_file(self, path: str, digest: str, size: int) -> None:
        # Not hashed here: the server hashes every upload before it stores it (422 otherwise).
        if size < SMALL_LIMIT:
            with open(path, "rb") as f:
                self.store_blobs([(digest, f.read())])
            return
        self._upload_file(path, digest, size, hashed_here=False)

    def _upload_file(self, path: str, digest: str, size: int, *, hashed_here: bool = True) -> None:
        """Upload a file in parts. When this client hashed it (``hashed_here``), a digest the
        server refuses means the file changed since: say so; else the digest was only claimed
        and the `DigestMismatchError` stands."""
        fd = os.open(path, os.O_RDONLY)

        def read(off: int, n: int) -> bytes:
            data = os.pread(fd, n, off)
            if len(data) != n:
                raise _changed(path, "it is shorter than when it was hashed")
            return data

        try:
            with transfer("uploading", size, path) as advance:
                self._upload(digest, size, counting_reads(read, advance), path)
        except DigestMismatchError:
            if not hashed_here:
                raise
            raise _changed(path, "its content is not what was hashed") from None
        finally:
            os.close(fd)

    def _upload(
        self,
        digest: str,
        size: int,
        read: Callable[[int, int], bytes],
        path: str | None,
    ) -> None:
        """Begin (or take up: the server hands back this key's open upload of the same blob,
        with the parts it kept), send what is missing, complete. An upload the server no longer
        knows (swept as abandoned, or lost with a server's state) is begun again."""
        for attempt in range(_UPLOAD_ATTEMPTS):
            plan = self._call("POST", "/uploads", json={"digest": digest, "size": size})
            try:
                self._send_upload(plan, size, read)
                return
            except NotFoundError:
                if not self.missing_blobs([digest]):
                    return  # completed: only the answer was lost
                if attempt == _UPLOAD_ATTEMPTS - 1:
                    raise
                _log.warning(
                    "cairn: the server at %s lost the upload of %s; beginning it again",
                    self.base_url,
                    path or digest,
                )

    def _send_upload(
        self, plan: Mapping[str, Any], size: int, read: Callable[[int, int], bytes]
    ) -> None:
        upload = f"/uploads/{_seg(plan['id'])}"
        if plan["mode"] == "presigned":
            self._put_presigned(plan, size, read)
        else:
            self._put_parts(plan, size, read)
        try:
            self._call("POST", f"{upload}/complete")
        except ValidationError:
            # Parts the server or the object store did not keep: send those again, once.
            state = self._call("GET", upload)
            if state["mode"] == "presigned" or len(state.get("parts_done", ())) >= -(
                -size // int(state["part_size"])
            ):
                raise
            self._put_parts(state, size, read)
            self._call("POST", f"{upload}/complete")

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
        self._send(self._plain, "PUT", plan["url"], headers=headers, body_factory=body)

    def _put_parts(
        self, plan: Mapping[str, Any], size: int, read: Callable[[int, int], bytes]
    ) -> None:
        part_size = int(plan["part_size"])
        count = max(1, -(-size // part_size))
        done = set(plan.get("parts_done", []))
        upload = f"/uploads/{_seg(plan['id'])}"

        presigned = plan["mode"] == "presigned-parts"

        def send(n: int) -> None:
            off = n * part_size
            length = min(part_size, size - off)
            headers = {"Content-Length": str(length)}
            if not presigned:  # read as it is sent: no part-sized buffer
                self._send(
                    self._http,
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
            target = self._call("POST", f"{upload}/parts/{n}/url", json={"checksum": checksum})
            headers.update(target["headers"])
            self._send(
                self._plain,
                "PUT",
                target["url"],
                headers=headers,
                body_factory=lambda: _chunks(data),
            )

        todo = [n for n in range(count) if n not in done]
        threads = transfer_threads()
        if len(todo) <= 1 or threads == 1:
            for n in todo:
                send(n)
            return
        # Each part is retried alone (``_send``); at most ``threads`` parts are read at once.
        with ThreadPoolExecutor(threads) as pool:
            for _ in pool.map(send, todo):
                pass

    # -- blobs: downloads --------------------------------------------------------------------

    def _fetch_into_cache(self, digest: str) -> str:
        hit = self._cache.lookup(digest)
        if hit is not None:
            return hit
        tmp = self._cache.partial()
        try:
            for attempt in range(self._retries + 1):
                try:
                    self._stream_blob(digest, tmp)
                    break
                except (httpx.TransportError, _Retry) as exc:
                    if attempt == self._retries:
                        raise CommError(f"could not download blob {digest}: {exc}") from None
                    self._backoff(attempt)
            return self._cache.install(tmp, digest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _stream_blob(self, digest: str, tmp: str) -> None:
        """The blob into ``tmp``, verified: its first ``RANGE_PART`` bytes by one request that
        also tells its size, the rest (a large blob) in ranges several at a time."""
        hasher = new_hasher()
        headers = {"Range": range_header(0, RANGE_PART)}
        with self._http.stream("GET", f"/blobs/{digest}", headers=headers) as resp:
            if resp.status_code == 307:
                location = resp.headers["location"]
                with self._plain.stream("GET", location, headers=headers) as inner:
                    total = self._write_stream(inner, tmp, hasher)
            else:
                total = self._write_stream(resp, tmp, hasher)
        if total > RANGE_PART:
            # The rest as one more report of the whole blob, continuing where the first ended.
            with transfer("downloading", total, None) as advance:
                advance(RANGE_PART)
                self._fetch_ranges(digest, tmp, total, advance)
            with open(tmp, "rb") as f:
                found, _ = hash_stream(f)
        else:
            found = digest_from_hasher(hasher)
        if found != digest:
            raise DigestMismatchError(
                f"blob {digest} from {self.base_url} has other content (digest mismatch)"
            )

    def _fetch_ranges(self, digest: str, tmp: str, total: int, advance: Advance) -> None:
        """Bytes ``[RANGE_PART, total)`` of a blob into ``tmp``, ranges in parallel, each written
        at its offset as it arrives; a range that failed is fetched again alone."""
        fd = os.open(tmp, os.O_WRONLY)

        def one(start: int) -> None:
            length = min(RANGE_PART, total - start)
            headers = {"Range": range_header(start, length)}
            for attempt in range(self._retries + 1):
                try:
                    self._range_into(digest, fd, start, length, headers)
                    advance(length)
                    return
                except (httpx.TransportError, _Retry) as exc:
                    if attempt == self._retries:
                        raise CommError(f"could not download blob {digest}: {exc}") from None
                    self._backoff(attempt)

        try:
            with ThreadPoolExecutor(transfer_threads()) as pool:
                for _ in pool.map(one, range(RANGE_PART, total, RANGE_PART)):
                    pass
        finally:
            os.close(fd)

    def _range_into(
        self, digest: str, fd: int, start: int, length: int, headers: dict[str, str]
    ) -> None:
        with self._http.stream("GET", f"/blobs/{digest}", headers=headers) as resp:
            if resp.status_code == 307:
                with self._plain.stream("GET", resp.headers["location"], headers=headers) as inner:
                    self._pwrite_stream(inner, fd, start, length)
            else:
                self._pwrite_stream(resp, fd, start, length)

    def _pwrite_stream(self, resp: httpx.Response, fd: int, start: int, length: int) -> None:
        if resp.status_code in _RETRY_STATUS:
            raise _Retry(f"{resp.status_code}")
        if resp.status_code != 206:
            resp.read()
            if resp.status_code >= 400:
                raise error_from_body(resp.status_code, _json_body(resp), self.base_url)
            raise CommError(f"{self.base_url} answered {resp.status_code} to a range request")
        at, end = start, start + length
        for chunk in resp.iter_bytes(CHUNK):
            if at + len(chunk) > end:
                raise CommError(f"{self.base_url} sent more than the range asked for")
            os.pwrite(fd, chunk, at)
            at += len(chunk)
        if at != end:
            raise httpx.ReadError("a range came back short")

    def _write_stream(self, resp: httpx.Response, tmp: str, hasher: Any) -> int:
        """Write an answer to ``tmp``, hashing it; the blob's whole size (from Content-Range)."""
        if resp.status_code in _RETRY_STATUS:
            raise _Retry(f"{resp.status_code}")
        if resp.status_code == 416:  # an empty blob has no first byte
            resp.read()
            open(tmp, "wb").close()
            return 0
        if resp.status_code >= 400:
            resp.read()
            raise error_from_body(resp.status_code, _json_body(resp), self.base_url)
        n = 0
        declared = (
            resp.headers.get("content-range", "").rpartition("/")[2]
            if resp.status_code == 206
            else resp.headers.get("content-length", "")
        )
        with (
            open(tmp, "wb") as f,
            transfer("downloading", int(declared) if declared.isdigit() else None, None) as advance,
        ):
            for chunk in resp.iter_bytes(CHUNK):
                hasher.update(chunk)
                f.write(chunk)
                n += len(chunk)
                advance(len(chunk))
        if resp.status_code == 206:
            total = resp.headers.get("content-range", "").rpartition("/")[2]
            if not total.isdigit():
                raise CommError(f"{self.base_url} answered a range without the blob's size")
            return int(total)
        return n

    def prefetch_blobs(self, digests: Sequence[str]) -> None:
        """Fetch blobs not yet cached, many at a time: those an S3 store keeps, by presigned
        GETs straight from the object store (``/blobs/urls``, several at a time); the others
        many per request (``/blobs/fetch``, several requests at a time). The server answers
        blobs up to 8 MiB in the order asked, up to 16 MiB per answer: what follows the last blob
        it sent is asked again. What is left out (large blobs, lost or damaged ones)
        ``download_blob`` fetches one by one, in ranges, with its own clear error."""
        todo = [d for d in dict.fromkeys(digests) if self._cache.lookup(d) is None]
        if not todo:
            return
        threads = transfer_threads()
        direct = self._presigned_gets(todo)
        todo = [d for d in todo if d not in direct]
        # Enough chunks to keep every thread busy, none over PREFETCH_BATCH digests.
        size = min(PREFETCH_BATCH, max(64, -(-len(todo) // threads)))
        chunks = [todo[i : i + size] for i in range(0, len(todo), size)]

        def fetch(chunk: list[str]) -> None:
            while chunk:
                resp = self._send(self._http, "POST", "/blobs/fetch", json={"digests": chunk})
                index = {d: i for i, d in enumerate(chunk)}
                last = -1
                for digest, data in unpack_blobs(resp.content):  # each re-hashed
                    tmp = self._cache.partial()
                    with open(tmp, "wb") as f:
                        f.write(data)
                    self._cache.install(tmp, digest)
                    last = max(last, index.get(digest, -1))
                if last < 0:
                    return
                chunk = chunk[last + 1 :]

        def get(item: tuple[str, str]) -> None:
            digest, url = item
            tmp = self._cache.partial()
            try:
                hasher = new_hasher()
                with self._plain.stream("GET", url) as resp:
                    if resp.status_code != 200:
                        return  # left to download_blob, which says what is wrong
                    self._write_stream(resp, tmp, hasher)
                if digest_from_hasher(hasher) == digest:  # else left out, never cached
                    self._cache.install(tmp, digest)
            except (httpx.TransportError, CairnError):
                pass  # left to download_blob, which retries and says what is wrong
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)

        tasks: list[tuple[Callable[[Any], None], Any]] = [(fetch, c) for c in chunks]
        tasks += [(get, item) for item in direct.items()]
        if len(tasks) == 1 or threads == 1:
            for fn, arg in tasks:
                fn(arg)
        elif tasks:
            # Presigned GETs are many and small: twice as many in flight as batches.
            with ThreadPoolExecutor(threads * 2 if direct else threads) as pool:
                for _ in pool.map(lambda task: task[0](task[1]), tasks):
                    pass

    def _presigned_gets(self, digests: list[str]) -> dict[str, str]:
        """Presigned GET URLs of those of ``digests`` an S3 store keeps, up to ``RANGE_PART``
        bytes (larger ones come down in ranges); none from a server on a local store (or one that
        has no such route: asked once)."""
        if self._no_urls:
            return {}
        out: dict[str, str] = {}
        for start in range(0, len(digests), URL_BATCH):
            chunk = digests[start : start + URL_BATCH]
            resp = self._send(
                self._http, "POST", "/blobs/urls", json={"digests": chunk}, accept=(404, 405)
            )
            if resp.status_code in (404, 405):
                self._no_urls = True
                return {}
            answer = resp.json()
            if not answer.get("object_store"):
                self._no_urls = True  # a local store: no need to ask again
            urls = answer["urls"]
            out.update((d, u["url"]) for d, u in urls.items() if int(u["size"]) <= RANGE_PART)
        return out

    def read_blob(self, digest: str) -> bytes:
        path = self._fetch_into_cache(digest)
        with open(path, "rb") as f:
            data = f.read()
        if digest_bytes(data) != digest:
            os.unlink(path)
            raise DigestMismatchError(
                f"cached blob {digest} at {path} is damaged (digest mismatch)"
            )
        return data

    def read_blobs(self, digests: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        for start in range(0, len(digests), PREFETCH_BATCH * 8):
            chunk = digests[start : start + PREFETCH_BATCH * 8]
            self.prefetch_blobs(chunk)
            for digest in chunk:
                yield digest, self.read_blob(digest)

    def blob_path(self, digest: str) -> str | None:
        return None  # blobs are on the server; download_blob fetches them

    def download_blob(self, digest: str, dest: str) -> None:
        path = self._fetch_into_cache(digest)
        try:
            _copy_verified(path, dest, digest)
        except DigestMismatchError:
            os.unlink(path)  # a damaged cache entry: fetch it again, once
            _copy_verified(self._fetch_into_cache(digest), dest, digest)

    def read_blob_range(self, digest: str, start: int, length: int) -> bytes:
        """A ``Range`` request (followed to the object store, range and all); a blob that is
        in the download cache already (verified) is read from there instead."""
        check_range(start, length)
        if length == 0:
            return b""
        hit = self._cache.lookup(check_digest(digest))
        if hit is not None:
            with open(hit, "rb") as f:
                f.seek(start)
                return f.read(length)
        headers = {"Range": range_header(start, length)}
        resp = self._send(self._http, "GET", f"/blobs/{digest}", headers=headers, accept=(416,))
        if resp.status_code == 307:
            location = resp.headers["location"]
            resp = self._send(self._plain, "GET", location, headers=headers, accept=(416,))
        if resp.status_code == 416:
            return b""  # the range starts past the end of the blob
        if resp.status_code == 206:
            return resp.content[:length]
        return resp.content[start : start + length]  # the whole blob came back

    # -- versions ------------------------------------------------------------------------------

    @staticmethod
    def _result(d: Mapping[str, Any]) -> CommitResult:
        v = d.get("version")
        return CommitResult(
            None if v is None else version_from_json(v),
            bool(d.get("created")),
            tuple(d.get("missing") or ()),
        )

    def commit(self, request: CommitRequest) -> CommitResult:
        body: dict[str, Any] = {
            "name": request.name,
            "type": request.type,
            "changes": changes_to_json(request.changes),
            "base_version_id": request.base_version_id,
            "description": request.description,
            "metadata": dict(request.metadata),
            "aliases": list(request.aliases),
            "tags": list(request.tags),
            "run_id": request.run_id,
        }
        if request.expect_alias is not None:
            body["expect_alias"] = list(request.expect_alias)
        if request.manifest is not None:
            body["manifest"] = request.manifest
        path = self._project(request.entity, request.project) + "/commit"
        return self._result(self._call("POST", path, json=body))

    def _stage_body(self, request: StageRequest | FinishRequest) -> dict[str, Any]:
        return {
            "name": request.name,
            "type": request.type,
            "distributed_id": request.distributed_id,
            "changes": changes_to_json(request.changes),
            "base_version_id": request.base_version_id,
            "run_id": request.run_id,
            "description": request.description,
            "metadata": None if request.metadata is None else dict(request.metadata),
            "aliases": list(request.aliases),
        }

    def stage(self, request: StageRequest) -> VersionRecord:
        path = self._project(request.entity, request.project) + "/stage"
        return version_from_json(self._call("POST", path, json=self._stage_body(request)))

    def finish(self, request: FinishRequest) -> CommitResult:
        body = {**self._stage_body(request), "tags": list(request.tags)}
        path = self._project(request.entity, request.project) + "/finish"
        return self._result(self._call("POST", path, json=body))

    def discard_pending(self, version_id: str) -> None:
        self._call("DELETE", f"/versions/{_seg(version_id)}/pending")

    def cleanup_pending(self, older_than_seconds: float) -> int:
        body = {"older_than_seconds": older_than_seconds}
        return int(self._call("POST", "/admin/cleanup-pending", json=body)["discarded"])

    def resolve(self, entity: str, project: str, name: str, label: str | None) -> VersionRecord:
        path = f"{self._project(entity, project)}/artifacts/{_seg(name)}/resolve"
        params = {} if label is None else {"label": label}
        return version_from_json(self._call("GET", path, params=params))

    def get_version(self, version_id: str) -> VersionRecord:
        return version_from_json(self._call("GET", f"/versions/{_seg(version_id)}"))

    def list_versions(
        self, entity: str, project: str, name: str, *, include_pending: bool = False
    ) -> list[VersionRecord]:
        path = f"{self._project(entity, project)}/artifacts/{_seg(name)}/versions"
        params = {"include_pending": "true" if include_pending else "false"}
        return [version_from_json(v) for v in self._call("GET", path, params=params)]

    def list_collections(
        self, entity: str, project: str, type_name: str | None = None
    ) -> list[CollectionRecord]:
        params = {} if type_name is None else {"type": type_name}
        rows = self._call("GET", self._project(entity, project) + "/collections", params=params)
        return [collection_from_json(c) for c in rows]

    def list_types(self, entity: str, project: str) -> list[str]:
        return [str(t) for t in self._call("GET", self._project(entity, project) + "/types")]

    def list_projects(self, entity: str | None = None) -> list[tuple[str, str]]:
        params = {} if entity is None else {"entity": entity}
        return [(str(e), str(p)) for e, p in self._call("GET", "/projects", params=params)]

    def update_version(
        self,
        version_id: str,
        *,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        aliases: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
    ) -> VersionRecord:
        body = {
            "description": description,
            "metadata": None if metadata is None else dict(metadata),
            "aliases": None if aliases is None else list(aliases),
            "tags": None if tags is None else list(tags),
        }
        return version_from_json(self._call("PATCH", f"/versions/{_seg(version_id)}", json=body))

    def add_alias(self, version_id: str, alias: str) -> VersionRecord:
        path = f"/versions/{_seg(version_id)}/aliases/{_seg(alias)}"
        return version_from_json(self._call("PUT", path))

    def remove_alias(self, version_id: str, alias: str) -> VersionRecord:
        path = f"/versions/{_seg(version_id)}/aliases/{_seg(alias)}"
        return version_from_json(self._call("DELETE", path))

    def delete_version(self, version_id: str, *, delete_aliases: bool = False) -> None:
        params = {"delete_aliases": "true" if delete_aliases else "false"}
        self._call("DELETE", f"/versions/{_seg(version_id)}", params=params)

    def use_version(self, version_id: str, run: RunRecord) -> None:
        body = {"entity": run.entity, "project": run.project, "run_id": run.id}
        self._call("POST", f"/versions/{_seg(version_id)}/users", json=body)

    def version_runs(self, version_id: str, role: str) -> list[RunRecord]:
        rows = self._call("GET", f"/versions/{_seg(version_id)}/runs", params={"role": role})
        return [run_from_json(r) for r in rows]

    def search(self, request: SearchRequest) -> SearchResult:
        return search_result_from_json(
            self._call("POST", "/search", json=search_request_to_json(request.check()))
        )

    # -- runs of a project (W&B's Api.runs, Run.delete) --

    def list_runs(self, entity: str, project: str) -> list[RunRecord]:
        return [
            run_from_json(r) for r in self._call("GET", self._project(entity, project) + "/runs")
        ]

    def delete_run(
        self, entity: str, project: str, run_id: str, *, delete_artifacts: bool = False
    ) -> None:
        params = {"delete_artifacts": "true" if delete_artifacts else "false"}
        self._call("DELETE", f"{self._project(entity, project)}/runs/{_seg(run_id)}", params=params)

    # -- a run's history and summary (W&B's run.log, run.summary) --

    def log_history(
        self, entity: str, project: str, run_id: str, rows: Sequence[str], summary: str | None
    ) -> None:
        path = f"{self._project(entity, project)}/runs/{_seg(run_id)}/history"
        self._call("POST", path, json={"rows": list(rows), "summary": summary})

    def run_history(
        self,
        entity: str,
        project: str,
        run_id: str,
        *,
        min_step: int | None = None,
        max_step: int | None = None,
        limit: int | None = None,
    ) -> list[str]:
        given = {"min_step": min_step, "max_step": max_step, "limit": limit}
        params = {k: str(v) for k, v in given.items() if v is not None}
        path = f"{self._project(entity, project)}/runs/{_seg(run_id)}/history"
        return [str(r) for r in self._call("GET", path, params=params)["rows"]]

    def run_summary(self, entity: str, project: str, run_id: str) -> str:
        path = f"{self._project(entity, project)}/runs/{_seg(run_id)}/summary"
        return str(self._call("GET", path)["summary"])

    def set_ttl(self, version_id: str, ttl_seconds: float | None) -> VersionRecord:
        body = {"ttl_seconds": ttl_seconds}
        return version_from_json(self._call("PUT", f"/versions/{_seg(version_id)}/ttl", json=body))

    # -- registry links and registries (W&B's link_artifact, Registry) --

    def link_version(
        self,
        source_version_id: str,
        entity: str,
        project: str,
        name: str,
        aliases: Sequence[str] = (),
    ) -> VersionRecord:
        body = {"entity": entity, "project": project, "name": name, "aliases": list(aliases)}
        path = f"/versions/{_seg(source_version_id)}/links"
        return version_from_json(self._call("POST", path, json=body))

    def unlink_version(self, version_id: str) -> None:
        self._call("DELETE", f"/versions/{_seg(version_id)}/link")

    def version_links(self, version_id: str) -> list[VersionRecord]:
        rows = self._call("GET", f"/versions/{_seg(version_id)}/links")
        return [version_from_json(v) for v in rows]

    def create_registry(
        self,
        name: str,
        *,
        description: str | None = None,
        visibility: str = "organization",
        artifact_types: Sequence[str] = (),
    ) -> RegistryRecord:
        body = {
            "name": name,
            "description": description,
            "visibility": visibility,
            "artifact_types": list(artifact_types),
        }
        return registry_from_json(self._call("POST", "/registries", json=body))

    def list_registries(self) -> list[RegistryRecord]:
        return [registry_from_json(r) for r in self._call("GET", "/registries")]

    # -- collections (W&B's ArtifactCollection) --

    def get_collection(self, entity: str, project: str, name: str) -> CollectionRecord:
        path = f"{self._project(entity, project)}/collections/{_seg(name)}"
        return collection_from_json(self._call("GET", path))

    def update_collection(
        self,
        entity: str,
        project: str,
        name: str,
        *,
        new_name: str | None = None,
        description: str | None = None,
        tags: Sequence[str] | None = None,
    ) -> CollectionRecord:
        path = f"{self._project(entity, project)}/collections/{_seg(name)}"
        body = {
            "name": new_name,
            "description": description,
            "tags": None if tags is None else list(tags),
        }
        return collection_from_json(self._call("PATCH", path, json=body))

    def delete_collection(self, entity: str, project: str, name: str) -> None:
        self._call("DELETE", f"{self._project(entity, project)}/collections/{_seg(name)}")

    # -- copying between stores (cairn sync) ----------------------------------------------------

    def export_versions(self, entity: str, project: str, name: str) -> list[VersionExport]:
        path = f"{self._project(entity, project)}/artifacts/{_seg(name)}/export"
        return [export_from_json(x) for x in self._call("GET", path)]

    def import_run(self, run: RunRecord) -> RunRecord:
        path = self._project(run.entity, run.project) + "/runs/import"
        return run_from_json(self._call("POST", path, json=run_to_json(run)))

    def import_version(self, request: ImportRequest) -> CommitResult:
        path = self._project(request.entity, request.project) + "/import"
        return self._result(self._call("POST", path, json=import_to_json(request)))

    # -- API keys (server admins; not part of the Service protocol) ----------------------------

    def create_key(self, user: str, project: str | None, role: str) -> dict[str, Any]:
        body = {"user": user, "project": project, "role": role}
        # Not idempotent: a retry after the request arrived could make a second key.
        return dict(self._call("POST", "/keys", json=body, idempotent=False))

    def revoke_key(self, key_id: str) -> None:
        """Revoke a key by id (or by the whole key: only its id is sent)."""
        self._call("DELETE", f"/keys/{key_id_of(key_id)}")

    def list_keys(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/keys"))


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


def _slicer(data: bytes) -> Callable[[int, int], bytes]:
    return lambda off, n: data[off : off + n]


class _Retry(CairnError):
    """A download answered 502/503/504: try again."""
