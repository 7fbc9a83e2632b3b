"""Downloads from a cairn server into the download cache: many blobs per request, presigned GETs
straight from the object store, a large blob in parallel ranges; every blob verified before it
is cached (``DownloadCache``), and again when it is read out of the cache.

``prefetch`` fetches blobs not yet cached, many at a time: those an S3 store keeps by presigned
GETs (``/blobs/urls``, several at a time), the others many per request (``/blobs/fetch``, several
requests at a time). What is left out (large blobs, lost or damaged ones) ``fetch`` gets one by
one: its first ``RANGE_PART`` bytes by a request that also tells its size, the rest in ranges
several at a time, each retried alone. See docs/design.md.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx

from cairn.core import (
    Advance,
    check_digest,
    digest_bytes,
    digest_from_hasher,
    new_hasher,
    transfer,
)
from cairn.errors import CairnError, CommError, DigestMismatchError
from cairn.service._http_cache import DownloadCache, drop
from cairn.service._http_client import HttpClient
from cairn.service._wire import unpack_blobs
from cairn.storage import CHUNK, check_range, hash_stream, range_header

PREFETCH_BATCH = 1024  # digests per download request (the server answers up to 16 MiB)
URL_BATCH = 4096  # presigned URLs per request
URL_FIRST = 128  # the first request of a download asks for fewer: its GETs start sooner
GATHER_FIRST = 64  # blobs without presigned GETs: the first gathered, to learn their size
GATHER_PART = 256  # ... then this many a request at most, several requests on their way
RANGE_PART = 16 << 20  # a large blob comes down in ranges of this size, several at a time
HELD_BYTES = 64 << 20  # fetched blobs held in memory for ``read_blobs`` (the rest: read back)
HELD_BLOB = 8 << 20  # a presigned GET up to this size comes into memory, a larger one to a file


class Fetcher:
    """The download half of ``HttpService`` (the Service protocol's ``read_*``, ``download_blob``
    and ``prefetch_blobs``), through ``cache``."""

    def __init__(self, client: HttpClient, cache: DownloadCache, threads: int) -> None:
        self.client = client
        self.cache = cache
        self.threads = threads  # batches or ranges in flight at once
        self._no_urls = False  # the server has no presigned GETs to give (a local store)

    # -- one blob --------------------------------------------------------------------------------

    def fetch(self, digest: str) -> str:
        """The cached file of ``digest``, fetched (verified) if it was not cached."""
        hit = self.cache.lookup(digest)
        if hit is not None:
            return hit
        tmp = self.cache.partial()
        try:
            self.client.retrying(
                lambda: self._stream_blob(digest, tmp), what=f"download blob {digest}"
            )
            return self.cache.install(tmp, digest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def read_blob(self, digest: str) -> bytes:
        return self.cache.read(self.fetch(digest), digest)

    def read_blobs(self, digests: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        """Verified contents, in the order asked. Blobs not cached are fetched many at a time
        and handed on from memory (verified), besides being cached: those an S3 store keeps
        each as soon as it and those before it have come (``_Window``: presigned GETs kept
        going ahead, at most ``HELD_BYTES`` of them held); from a store without presigned GETs
        (or blobs it keeps in its catalog) many per request, each answer's as soon as it and
        those before it have come, while the next requests are on their way (``_gathered``;
        where an object store has no URLs for the first ``URL_FIRST``, those come while it is
        asked about the rest). What did not come whole, or was cached already, is read from the
        cache (verified)."""
        for start in range(0, len(digests), PREFETCH_BATCH * 8):
            chunk = digests[start : start + PREFETCH_BATCH * 8]
            todo = [d for d in dict.fromkeys(chunk) if self.cache.lookup(d) is None]
            upto = min(URL_FIRST, len(todo))
            urls = self._presigned_gets(todo[:upto]) if todo else {}
            if not urls and todo[upto:] and not self._no_urls:
                # An object store keeps the first ones elsewhere (small blobs, in its catalog):
                # are there any it keeps itself? Asked once for the rest (two requests for
                # 8,192) while the first are fetched and handed on, not before them.
                cut = chunk.index(todo[upto])  # chunk[:cut]: cached, or in todo[:upto]
                with ThreadPoolExecutor(1) as asker:
                    later = asker.submit(self._presigned_gets, todo[upto:])
                    yield from self._gathered(chunk[:cut], todo[:upto])
                    urls = later.result()
                chunk, todo, upto = chunk[cut:], todo[upto:], len(todo) - upto
            if not urls:
                yield from self._gathered(chunk, todo)
                continue
            window = _Window(self, todo, upto, urls)
            try:
                for digest in chunk:
                    data = window.take(digest)
                    yield digest, data if data is not None else self.read_blob(digest)
            finally:
                window.close()

    def _gathered(self, chunk: Sequence[str], todo: list[str]) -> Iterator[tuple[str, bytes]]:
        """``read_blobs`` of blobs without presigned GETs, many per request: the first
        ``GATHER_FIRST`` (to learn their size), then parts of as many as ``HELD_BYTES / (threads
        + 1)`` hold at the size those averaged (up to ``GATHER_PART``), ``threads`` of them on
        their way at once. Each part is cached by the thread that fetched it and handed on as
        soon as it and those before it have come, while the next ones are fetched (at most
        ``HELD_BYTES`` held); what did not come is read from the cache (or fetched alone).
        ``todo``: those of ``chunk`` not cached, once each."""
        limit = HELD_BYTES // (self.threads + 1)
        held = self._gather(todo[:GATHER_FIRST], limit)
        sizes = [len(data) for data in held.values()]
        average = sum(sizes) / len(sizes) if sizes else 0
        step = max(GATHER_FIRST, min(GATHER_PART, int(limit / average) if average else GATHER_PART))
        parts = [todo[i : i + step] for i in range(GATHER_FIRST, len(todo), step)]
        part_of = {d: n for n, part in enumerate(parts) for d in part}
        pool = ThreadPoolExecutor(self.threads)
        window = deque(pool.submit(self._gather, part, limit) for part in parts[: self.threads])
        merged = 0  # parts[:merged] are in ``held`` (or taken)
        try:
            for digest in chunk:
                while part_of.get(digest, -1) >= merged:
                    held.update(window.popleft().result())
                    merged += 1
                    if (following := merged + len(window)) < len(parts):
                        window.append(pool.submit(self._gather, parts[following], limit))
                data = held.pop(digest, None)
                yield digest, data if data is not None else self.read_blob(digest)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _gather(self, digests: Sequence[str], limit: int) -> dict[str, bytes]:
        """Fetch ``digests`` (not cached: the server asked already for presigned GETs of them,
        or has none) into the cache; up to ``limit`` bytes of them are also returned (verified),
        so they need not be read back."""
        held: dict[str, bytes] = {}
        size = 0

        def keep(digest: str, data: bytes) -> None:  # in this thread alone: no lock
            nonlocal size
            self.cache.add(digest, data)
            if size + len(data) <= limit:
                held[digest] = data
                size += len(data)

        self._fetch_batch(list(digests), keep)  # looked up in the cache already
        return held

    def download_blob(self, digest: str, dest: str) -> None:
        path = self.fetch(digest)
        try:
            self.cache.copy_out(path, dest, digest)
        except DigestMismatchError:
            drop(path)  # a damaged cache entry: fetch it again, once
            self.cache.copy_out(self.fetch(digest), dest, digest)

    def read_blob_range(self, digest: str, start: int, length: int) -> bytes:
        """A ``Range`` request (followed to the object store, range and all); a blob that is
        in the download cache already (verified) is read from there instead."""
        check_range(start, length)
        if length == 0:
            return b""
        hit = self.cache.lookup(check_digest(digest))
        if hit is not None:
            with open(hit, "rb") as f:
                f.seek(start)
                return f.read(length)
        headers = {"Range": range_header(start, length)}
        resp = self.client.send("GET", f"/blobs/{digest}", headers=headers, accept=(416,))
        if resp.status_code == 307:
            location = resp.headers["location"]
            resp = self.client.send("GET", location, plain=True, headers=headers, accept=(416,))
        if resp.status_code == 416:
            return b""  # the range starts past the end of the blob
        if resp.status_code == 206:
            return resp.content[:length]
        return resp.content[start : start + length]  # the whole blob came back

    def _stream_blob(self, digest: str, tmp: str) -> None:
        """The blob into ``tmp``, verified: its first ``RANGE_PART`` bytes by one request that
        also tells its size, the rest (a large blob) in ranges several at a time."""
        hasher = new_hasher()
        headers = {"Range": range_header(0, RANGE_PART)}
        with self.client.api.stream("GET", f"/blobs/{digest}", headers=headers) as resp:
            if resp.status_code == 307:
                location = resp.headers["location"]
                with self.client.plain.stream("GET", location, headers=headers) as inner:
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
                f"blob {digest} from {self.client.base_url} has other content (digest mismatch)"
            )

    def _fetch_ranges(self, digest: str, tmp: str, total: int, advance: Advance) -> None:
        """Bytes ``[RANGE_PART, total)`` of a blob into ``tmp``, ranges in parallel, each written
        at its offset as it arrives; a range that failed is fetched again alone."""
        fd = os.open(tmp, os.O_WRONLY)

        def one(start: int) -> None:
            length = min(RANGE_PART, total - start)
            headers = {"Range": range_header(start, length)}
            self.client.retrying(
                lambda: self._range_into(digest, fd, start, length, headers),
                what=f"download blob {digest}",
            )
            advance(length)

        try:
            with ThreadPoolExecutor(self.threads) as pool:
                for _ in pool.map(one, range(RANGE_PART, total, RANGE_PART)):
                    pass
        finally:
            os.close(fd)

    def _range_into(
        self, digest: str, fd: int, start: int, length: int, headers: dict[str, str]
    ) -> None:
        with self.client.api.stream("GET", f"/blobs/{digest}", headers=headers) as resp:
            if resp.status_code == 307:
                location = resp.headers["location"]
                with self.client.plain.stream("GET", location, headers=headers) as inner:
                    self._pwrite_stream(inner, fd, start, length)
            else:
                self._pwrite_stream(resp, fd, start, length)

    def _pwrite_stream(self, resp: httpx.Response, fd: int, start: int, length: int) -> None:
        self.client.check(resp)
        if resp.status_code != 206:
            resp.read()
            raise CommError(
                f"{self.client.base_url} answered {resp.status_code} to a range request"
            )
        at, end = start, start + length
        for chunk in resp.iter_bytes(CHUNK):
            if at + len(chunk) > end:
                raise CommError(f"{self.client.base_url} sent more than the range asked for")
            os.pwrite(fd, chunk, at)
            at += len(chunk)
        if at != end:
            raise httpx.ReadError("a range came back short")

    def _write_stream(self, resp: httpx.Response, tmp: str, hasher: Any) -> int:
        """Write an answer to ``tmp``, hashing it; the blob's whole size (from Content-Range)."""
        if resp.status_code == 416:  # an empty blob has no first byte
            resp.read()
            open(tmp, "wb").close()
            return 0
        self.client.check(resp)
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
                raise CommError(f"{self.client.base_url} answered a range without the blob's size")
            return int(total)
        return n

    # -- many blobs ------------------------------------------------------------------------------

    def prefetch(self, digests: Sequence[str]) -> None:
        """Fetch blobs not yet cached, many at a time: those an S3 store keeps, by presigned
        GETs straight from the object store (``/blobs/urls``, several at a time); the others
        many per request (``/blobs/fetch``, several requests at a time). The server answers
        blobs up to 8 MiB in the order asked, up to 16 MiB per answer: what follows the last blob
        it sent is asked again. What is left out (large blobs, lost or damaged ones) ``fetch``
        gets one by one, in ranges, with its own clear error."""
        self._fetch_many(digests, self.cache.add)

    def _fetch_many(
        self, digests: Sequence[str], keep: Callable[[str, bytes], None], urls: bool = True
    ) -> None:
        """``prefetch``'s work: each blob not cached that came whole and verified goes to
        ``keep(digest, data)`` (which caches it); a large one fetched straight into the cache.
        ``urls=False``: the server was asked already and has no presigned GETs of these."""
        todo = [d for d in dict.fromkeys(digests) if self.cache.lookup(d) is None]
        if not todo:
            return
        threads = self.threads
        direct = self._presigned_gets(todo) if urls else {}
        todo = [d for d in todo if d not in direct]
        # Enough chunks to keep every thread busy, none over PREFETCH_BATCH digests.
        size = min(PREFETCH_BATCH, max(64, -(-len(todo) // threads)))
        chunks = [todo[i : i + size] for i in range(0, len(todo), size)]

        def fetch(chunk: list[str]) -> None:
            self._fetch_batch(chunk, keep)  # asked again for what follows the last that came

        def get(item: tuple[str, tuple[str, int]]) -> None:
            data = self.get_direct(*item)
            if data is not None:
                keep(item[0], data)

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

    def _fetch_batch(self, chunk: list[str], keep: Callable[[str, bytes], None]) -> None:
        """``chunk``'s blobs by ``POST /blobs/fetch``, each that came (verified) to ``keep``:
        asked again for what follows the last one an answer carried."""
        while chunk:
            resp = self.client.send("POST", "/blobs/fetch", json={"digests": chunk})
            index = {d: i for i, d in enumerate(chunk)}
            last = -1
            for digest, data in unpack_blobs(resp.content):  # each re-hashed
                keep(digest, data)
                last = max(last, index.get(digest, -1))
            if last < 0:
                return
            chunk = chunk[last + 1 :]

    def get_direct(self, digest: str, where: tuple[str, int]) -> bytes | None:
        """A blob by its presigned GET ``where`` (URL, size): its bytes if it came whole and
        verified and is up to ``HELD_BLOB`` (a larger one goes into the cache as it comes);
        None otherwise (left to ``fetch``, which retries and says what is wrong; nothing
        unverified is cached)."""
        url, size = where
        if size <= HELD_BLOB:
            try:
                status, data = self.client.get_object(url)
            except httpx.TransportError:
                return None
            return data if status == 200 and digest_bytes(data) == digest else None
        tmp = self.cache.partial()
        try:
            hasher = new_hasher()
            with self.client.plain.stream("GET", url) as resp:
                if resp.status_code != 200:
                    return None
                self._write_stream(resp, tmp, hasher)
            if digest_from_hasher(hasher) == digest:
                self.cache.install(tmp, digest)
        except (httpx.TransportError, CairnError):
            pass
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return None

    def _presigned_gets(self, digests: list[str]) -> dict[str, tuple[str, int]]:
        """Presigned GET URLs of those of ``digests`` an S3 store keeps, up to ``RANGE_PART``
        bytes (larger ones come down in ranges); none from a server on a local store (or one that
        has no such route: asked once)."""
        if self._no_urls:
            return {}
        out: dict[str, tuple[str, int]] = {}
        for start in range(0, len(digests), URL_BATCH):
            chunk = digests[start : start + URL_BATCH]
            resp = self.client.send(
                "POST", "/blobs/urls", json={"digests": chunk}, accept=(404, 405)
            )
            if resp.status_code in (404, 405):
                self._no_urls = True
                return {}
            answer = resp.json()
            if not answer.get("object_store"):
                self._no_urls = True  # a local store: no need to ask again
            urls = answer["urls"]
            out.update(
                (d, (u["url"], int(u["size"])))
                for d, u in urls.items()
                if int(u["size"]) <= RANGE_PART
            )
        return out


class _Window:
    """The presigned GETs of ``todo`` (blobs not cached, in the order they will be taken),
    kept going ``threads * 2`` at a time, at most ``HELD_BYTES`` of them fetched or on their
    way and not yet taken; each verified and cached by the thread that fetched it. URLs are
    asked ahead, by a thread of their own (not queued behind the GETs): ``first`` answers
    ``todo[:upto]`` (the first ``URL_FIRST``, so the first GETs go at once), the next four times
    as many (up to ``URL_BATCH``) are asked as soon as an answer is used. The blobs of an answer the store
    keeps elsewhere (no URL: small ones in its catalog) are fetched many per request into the
    cache."""

    def __init__(
        self, fetcher: Fetcher, todo: list[str], upto: int, first: dict[str, tuple[str, int]]
    ) -> None:
        self.fetcher = fetcher
        self.todo = todo
        self.pool = ThreadPoolExecutor(fetcher.threads * 2)
        self.asker = ThreadPoolExecutor(1)  # requests of URLs
        self.pending: dict[str, tuple[Future[bytes | None], int]] = {}  # GET, bytes held
        self.elsewhere: dict[str, Future[None]] = {}  # fetched into the cache, many a request
        self.held = 0  # bytes of GETs submitted and not yet taken
        self.next = 0  # todo[next] is the next to submit
        self.urls: dict[str, tuple[str, int]] = {}
        self.answered = 0  # todo[:answered] have their URL answer in ``urls``
        self.asked = 0  # todo[answered:asked] are asked by ``later``
        self.later: Future[dict[str, tuple[str, int]]] | None = None
        self._answer(upto, first)

    def _answer(self, upto: int, answer: dict[str, tuple[str, int]]) -> None:
        """URLs of ``todo[answered:upto]`` are ``answer``; ask the next batch at once."""
        batch = self.todo[self.answered : upto]
        self.urls.update(answer)
        rest = [d for d in batch if d not in answer]
        if rest:
            fetched = self.pool.submit(
                self.fetcher._fetch_many, rest, self.fetcher.cache.add, False
            )
            self.elsewhere.update(dict.fromkeys(rest, fetched))
        self.answered = self.asked = upto
        if upto < len(self.todo):
            # Each request four times the last (up to URL_BATCH): signed while the blobs of
            # the last are fetched, which takes longer than signing four times as many.
            more = min(URL_BATCH, 4 * len(batch))
            self.asked = min(upto + more, len(self.todo))
            self.later = self.asker.submit(
                self.fetcher._presigned_gets, self.todo[upto : self.asked]
            )

    def _fill(self) -> None:
        """Submit GETs in order while fewer than ``HELD_BYTES`` are held (at least one)."""
        while self.next < len(self.todo) and (self.held < HELD_BYTES or not self.pending):
            if self.next >= self.answered:
                assert self.later is not None
                later, self.later = self.later, None
                self._answer(self.asked, later.result())
            digest = self.todo[self.next]
            self.next += 1
            where = self.urls.pop(digest, None)
            if where is not None:
                size = where[1] if where[1] <= HELD_BLOB else 0  # a larger one: cached only
                self.pending[digest] = (self.pool.submit(self._get, digest, where), size)
                self.held += size

    def _get(self, digest: str, where: tuple[str, int]) -> bytes | None:
        data = self.fetcher.get_direct(digest, where)
        if data is not None:
            self.fetcher.cache.add(digest, data)
        return data

    def take(self, digest: str) -> bytes | None:
        """The verified bytes of ``digest`` if they came by presigned GET; None where the
        cache has them now or never did (``fetch`` then reads them there or gets them)."""
        self._fill()
        got = self.pending.pop(digest, None)
        if got is None:
            fetched = self.elsewhere.pop(digest, None)
            if fetched is not None:
                fetched.result()
            return None
        future, size = got
        self.held -= size
        data = future.result()
        self._fill()
        return data

    def close(self) -> None:
        for future, _ in self.pending.values():
            future.cancel()
        if self.later is not None:
            self.later.cancel()
        self.asker.shutdown(wait=True, cancel_futures=True)
        self.pool.shutdown(wait=True, cancel_futures=True)  # a failed download stops soon
