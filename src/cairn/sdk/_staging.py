"""Staging: turning local files into stored blobs, reading each changed file once.

A file whose (device, inode, size, mtime, ctime) is in the stat cache is not read at all; its
blob's presence is checked once per batch when it matters (at commit). Small files are read
whole, hashed and buffered, then written in one transaction; large files are streamed into the
store while they are hashed. Files are hashed in a few threads: hashing and reading release the
GIL, so this uses both cores.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cairn.core import digest_bytes
from cairn.errors import DigestMismatchError, ValidationError
from cairn.sdk._statcache import StatCache, StatKey, is_racy, now_ns, stat_key
from cairn.service import Service
from cairn.storage import SMALL_LIMIT

FLUSH_BYTES = 32 << 20
_THREADS = 4
_MIN_PARALLEL = 64  # below this many files threads cost more than they save
_MIN_PARALLEL_BYTES = (
    64 << 20
)  # ... unless they are large: then reading one overlaps storing another


@dataclass(frozen=True, slots=True)
class StagedFile:
    digest: str
    size: int


def _changed_while_reading(path: str) -> ValidationError:
    return ValidationError(
        f"file {path} changed while cairn was reading it; add it again once it is complete"
    )


class Stager:
    """Stores the content of local files for the artifacts of one process."""

    def __init__(self, service: Service, stat_cache: StatCache | None) -> None:
        self._service = service
        self._cache = stat_cache
        self._lock = threading.Lock()
        self._buffer: list[tuple[str, bytes]] = []
        self._buffer_bytes = 0
        self._sources: dict[str, str] = {}  # digest -> a local file with that content

    # -- hashing and storing -------------------------------------------------------------------

    def stage(
        self,
        files: Sequence[tuple[str, os.stat_result]],
        *,
        tree_root: str | None = None,
        use_cache: bool = True,
        link: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> list[StagedFile]:
        """Digest and store ``files`` (absolute path, its stat); results in the same order.

        ``tree_root`` (a directory all files are under) lets the stat cache answer in one query.
        """
        started = now_ns()
        cached: dict[str, tuple[StatKey, str]] = {}
        if use_cache and self._cache is not None:
            if tree_root is not None and len(files) > 1:
                cached = self._cache.lookup_tree(tree_root)
            else:
                for path, _ in files:
                    hit = self._cache.lookup(path)
                    if hit is not None:
                        cached[path] = hit
        results: list[StagedFile | None] = [None] * len(files)
        misses: list[int] = []
        for i, (path, st) in enumerate(files):
            hit = cached.get(path)
            if hit is not None and hit[0] == stat_key(st):
                results[i] = StagedFile(hit[1], st.st_size)
                self._sources.setdefault(hit[1], path)
            else:
                misses.append(i)
        if on_progress is not None and len(misses) < len(files):
            on_progress(
                len(files) - len(misses),
                sum(files[i][1].st_size for i in range(len(files)) if results[i] is not None),
            )
        fresh: list[tuple[str, StatKey, str]] = []

        def work(i: int) -> None:
            path, st = files[i]
            staged, st_after = self._store_one(path, st, link)
            results[i] = staged
            if not is_racy(st_after, started):
                fresh.append((path, stat_key(st_after), staged.digest))
            if on_progress is not None:
                on_progress(1, staged.size)

        big = sum(files[i][1].st_size for i in misses) >= _MIN_PARALLEL_BYTES
        if len(misses) >= _MIN_PARALLEL or (big and len(misses) > 1):
            with ThreadPoolExecutor(_THREADS) as pool:
                for _ in pool.map(work, misses):
                    pass
        else:
            for i in misses:
                work(i)
        if use_cache and self._cache is not None and fresh:
            self._cache.record(fresh)
        return [r for r in results if r is not None]

    def _store_one(
        self, path: str, st: os.stat_result, link: bool
    ) -> tuple[StagedFile, os.stat_result]:
        if st.st_size >= SMALL_LIMIT:
            info = self._service.store_file(path, link=link)
            st_after = os.stat(path)
            if st_after.st_size != info.size or stat_key(st_after) != stat_key(st):
                raise _changed_while_reading(path)
            self._sources.setdefault(info.digest, path)
            return StagedFile(info.digest, info.size), st_after
        with open(path, "rb") as f:
            data = f.read()
            st_after = os.fstat(f.fileno())
        if len(data) != st_after.st_size or stat_key(st_after)[2:] != stat_key(st)[2:]:
            raise _changed_while_reading(path)
        digest = digest_bytes(data)
        self._sources.setdefault(digest, path)
        self._buffer_add(digest, data)
        return StagedFile(digest, len(data)), st_after

    def stage_bytes(self, data: bytes) -> StagedFile:
        """Store content that is not in a file (objects added with ``Artifact.add``)."""
        digest = digest_bytes(data)
        if len(data) >= SMALL_LIMIT:
            self._service.store_blobs([(digest, data)])
        else:
            self._buffer_add(digest, data)
        return StagedFile(digest, len(data))

    def _buffer_add(self, digest: str, data: bytes) -> None:
        with self._lock:
            self._buffer.append((digest, data))
            self._buffer_bytes += len(data)
            full = self._buffer_bytes >= FLUSH_BYTES
        if full:
            self.flush()

    def flush(self) -> None:
        """Make every buffered blob durable in the store."""
        with self._lock:
            batch, self._buffer, self._buffer_bytes = self._buffer, [], 0
        if batch:
            self._service.store_blobs(batch)

    def restore(self, digests: Sequence[str]) -> None:
        """Store again blobs the store reports missing, from the local files they came from.

        Small files are read and stored many at a time (one transaction, or one request to a
        server, per 32 MiB), not one by one."""
        batch: list[tuple[str, bytes]] = []
        size = 0
        for digest in digests:
            path = self._sources.get(digest)
            if path is None:
                raise DigestMismatchError(
                    f"content {digest} is missing from the store at {self._service.location} and"
                    " no local file with it is known; add the file again"
                )
            try:
                if os.path.getsize(path) < SMALL_LIMIT:
                    with open(path, "rb") as f:
                        data = f.read()
                    found = digest_bytes(data)
                    batch.append((found, data))
                    size += len(data)
                else:
                    found = self._service.store_file(path).digest
            except FileNotFoundError:
                raise ValidationError(
                    f"file {path} was added to the artifact but is gone; add it again"
                ) from None
            if found != digest:
                raise ValidationError(
                    f"file {path} changed after it was added to the artifact; add it again"
                )
            if size >= FLUSH_BYTES:
                self._service.store_blobs(batch)
                batch, size = [], 0
        if batch:
            self._service.store_blobs(batch)

    def ensure_present(self, digests: Sequence[str]) -> None:
        """Flush, then store whatever of ``digests`` the store still lacks."""
        self.flush()
        missing = self._service.missing_blobs(list(dict.fromkeys(digests)))
        if missing:
            self.restore(missing)
