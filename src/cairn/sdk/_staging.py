"""Staging: turning local files into stored blobs, reading each changed file once.

A file whose (device, inode, size, mtime, ctime) is in the stat cache is not read at all; its
blob's presence is checked once per batch when it matters (at commit). Other files are read once:
files up to ``BATCH_LIMIT`` whole (hashed, buffered, then written many per transaction or
request), larger ones streamed into the store while they are hashed (a few at once, on threads).
A big job for the embedded store goes to worker processes (``_stage_pool.py``: every core reads,
hashes and stores; the calling process walks and assembles), a small one stays in this process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple, TypeVar, cast

from cairn.core import digest_bytes
from cairn.errors import BlobNotFoundError, CommError
from cairn.sdk._settings import Settings
from cairn.sdk._statcache import StatCache, StatKey, is_racy, now_ns, stat_key
from cairn.sdk._whole import (
    LocalFile,
    ReadRun,
    changed_while_reading,
    default_workers,
    read_here,
    runnable,
    worth_workers,
    write_early,
)
from cairn.sdk._write_behind import WriteBehind
from cairn.service import CommitRequest, CommitResult, Service, StageRequest
from cairn.storage import SMALL_LIMIT, LocalBlobStore

if TYPE_CHECKING:
    from cairn.core import VersionRecord
    from cairn.sdk._read_ahead import ReadAhead
    from cairn.service import LocalService

FLUSH_BYTES = 32 << 20
# A remote store's buffers are smaller: up to three are held at once (one filling, two being
# sent), which is what an upload's client holds (16 MiB: ~100 MiB at its peak, issue 14).
REMOTE_FLUSH_BYTES = 16 << 20
FLUSH_COUNT = 20_000  # blobs per buffer too: a million tiny files must not sit in one buffer
STORE_AGAIN_ATTEMPTS = 4  # blobs a store lost while logging are stored again this many times
# Files up to this size are read whole, hashed, buffered and stored many at a time (many per
# request; a batch made durable at once): larger ones stream in parts, one per thread (or clone).
BATCH_LIMIT = 8 << 20
_THREADS = 2  # large files read at once, at least (each waits on its own flushes)
# A job this big (files, or bytes) goes to worker processes; a smaller one would not repay
# their start (a new interpreter importing the blob store, ~0.05 s of CPU each).
POOL_FILES = 2_000
POOL_BYTES = 64 << 20
# Files smaller than this on average are not worth a worker: sending a name and taking back a
# digest costs the caller about what reading the file does (100,000 files of a few bytes: 23-40%
# more CPU with a worker). Files of blob-file size go to the workers too (design.md, s7).
POOL_MEAN_BYTES = 1024
STORED_REMEMBERED = 50_000  # blobs a stager remembers storing for its commit (``commit``)
# A buffer this small at the commit is stored with the commit's pages (``flush``).
HELD_BLOBS = 64
HELD_BYTES = 4 << 20

T = TypeVar("T")


class StagedFile(NamedTuple):
    digest: str
    size: int


class Stager:
    """Stores the content of local files for the artifacts of one process."""

    def __init__(
        self,
        service: Service,
        stat_cache: StatCache | None,
        *,
        workers: int | None = None,
        local_blobs: LocalBlobStore | None = None,
        settings: Settings | None = None,
    ) -> None:
        """``workers``: processes that stage a big job, this one included (the settings'
        ``CAIRN_STAGE_WORKERS``; 1: this process does it all; None: not chosen, one per core for
        small files), into ``local_blobs``, the embedded store's blob directory
        (``LocalService.local_blobs``; None: no workers). ``settings``: the session's, for how
        progress shows (None: read from the environment when it starts)."""
        self.settings = settings
        self._service = service
        self._local_blobs = local_blobs
        self._cache = stat_cache
        self._lock = threading.Lock()
        self._buffer: list[tuple[str, bytes]] = []
        self._buffer_bytes = 0
        self._flush_bytes = FLUSH_BYTES if service.is_local else REMOTE_FLUSH_BYTES
        self._sources: dict[str, tuple[str, str]] = {}  # digest -> a local file with that content
        # Files read, not yet in ``_sources`` (made only when a blob must be stored again):
        # (files, their positions read, their digests), a run at a time.
        self._found: list[tuple[Sequence[LocalFile], Sequence[int], Sequence[str]]] = []
        # Directories staged as a stream (too many files to remember one by one): the manifest
        # written for each, where its files came from, and the entry path prefix they got.
        self._trees: list[tuple[str, str, str]] = []
        self._writes = WriteBehind()
        # Directories where a file was read too soon after it changed to be cached (racy): a
        # tree record must not vouch for them (see _trees.py).
        self.racy_dirs: set[str] = set()
        # Chosen by the settings, or (None) one per core.
        self._workers = default_workers() if workers is None else workers
        self._chosen = workers is not None
        # The staging workers of the directory being added, with the files they and this
        # process share (``_read_ahead.py``); None: this process reads alone.
        self._ahead: ReadAhead | None = None
        # The embedded store's gc sweeps, counted before anything is stored; the blobs stored since.
        self._sweeps = None if (local := self._embedded()) is None else local.sweeps()
        self._stored: set[str] | None = set() if self._sweeps is not None else None

    # -- hashing and storing -------------------------------------------------------------------

    def stage(
        self,
        files: Sequence[LocalFile],
        *,
        use_cache: bool = True,
        link: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
        remember: bool = True,
        more: bool = False,
    ) -> list[StagedFile]:
        """Digest and store ``files``; the results come in the same order.

        With ``remember=False`` the local source of each digest is not kept (a streamed
        directory: ``add_tree`` says where its files are, for ``restore``). ``more``: files of
        the same job come after these (a streamed directory's next chunk); else the worker
        processes, if any, write their last blobs as soon as they have read their last chunk."""
        started = now_ns()
        results: list[StagedFile | None] = [None] * len(files)
        misses: list[int] = []
        sources: dict[str, tuple[str, str]] = self._sources if remember else {}
        cache = self._cache if use_cache else None
        cached = {} if cache is None else cache.load_dirs({d for d, _, _ in files})
        if any(cached.values()):  # else nothing is cached (a first log): every file is a miss
            empty: dict[str, tuple[StatKey, str]] = {}
            for i, (d, name, st) in enumerate(files):
                hit = cached.get(d, empty).get(name)
                if hit is not None and hit[0] == (
                    st.st_dev,
                    st.st_ino,
                    st.st_size,
                    st.st_mtime_ns,
                    st.st_ctime_ns,
                ):
                    results[i] = StagedFile(hit[1], st.st_size)
                    if hit[1] not in sources:
                        sources[hit[1]] = (d, name)
                else:
                    misses.append(i)
            if on_progress is not None and len(misses) < len(files):
                hits = [r for r in results if r is not None]
                on_progress(len(hits), sum(r.size for r in hits))
        else:
            misses = list(range(len(files)))
        fresh: list[tuple[str, str, StatKey, str]] = []
        racy = self.racy_dirs
        stored = self._stored
        if stored is not None and (not remember or len(stored) + len(misses) > STORED_REMEMBERED):
            stored = self._stored = None  # streamed, or huge: its commit looks every blob up
        # A run of files at a time (up to a chunk's): per-file Python work here is the calling
        # process's, the critical path of a first log (20,000 files: ~3 us a file was 0.06 s).
        for run in self._read_all(files, misses, link, started, more):
            positions, digests = run.positions, run.digests
            for i, staged in zip(positions, map(StagedFile, digests, run.sizes), strict=True):
                results[i] = staged
            if stored is not None:
                stored.update(digests)
            if remember:
                self._found.append((files, positions, digests))  # sources, made when needed
            for i, key, digest in zip(positions, run.keys, digests, strict=True):
                d, name, _ = files[i]
                if key is not None:
                    fresh.append((d, name, key, digest))
                else:
                    racy.add(d)
            size = sum(run.sizes)
            if run.blobs:
                self._buffer_extend(run.blobs, size)
            if on_progress is not None:
                on_progress(len(positions), size)
        if self._ahead is not None and not more:
            # The job is read: this process's last blobs go to its writer now, while the
            # workers write theirs and this process goes on (stat-cache rows, entries).
            self._write_behind()
        if cache is not None and fresh:
            cache.record_files(fresh)
        return cast("list[StagedFile]", results)  # every file has its result now

    def _read_all(
        self, files: Sequence[LocalFile], misses: list[int], link: bool, started: int, more: bool
    ) -> Iterator[ReadRun]:
        """Read and hash the missed files, in order. Files up to BATCH_LIMIT are read whole, by
        worker processes and this one when the job is big enough for workers (``_read_ahead``:
        the workers store their blobs themselves), else here; larger ones (and, with ``link``,
        every file the store would clone) stream into the store one per thread, their flushes
        overlapping."""
        limit = self._whole_limit(link)
        large = [i for i in misses if files[i][2].st_size >= limit]
        small = [i for i in misses if files[i][2].st_size < limit] if large else misses
        ahead = self._ahead_for(len(small), sum(files[i][2].st_size for i in small))
        if not large:
            yield from self._read_small(files, small, started, ahead, more)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(_THREADS, thread_name_prefix="cairn-hash") as threads:
            # Large files first, so their flushes overlap the small files' reading.
            big = [threads.submit(self._read_large, i, files[i], link, started) for i in large]
            yield from self._read_small(files, small, started, ahead, more)
            for one in big:
                yield one.result()

    def _whole_limit(self, link: bool) -> int:
        """Files smaller than this are read whole (larger ones stream, or are cloned)."""
        return SMALL_LIMIT if link and self._service.is_local else BATCH_LIMIT

    def expect(self, files: Sequence[LocalFile], *, link: bool = False) -> None:
        """A walk has found ``files`` so far, and more may come: when they are enough for the
        worker processes and the stat cache knows none of the first ones (a first log, not a
        re-log), start the workers now and give them these files to read while the walk goes
        on (``read_ahead`` the ones found next)."""
        if self._ahead is not None or self._workers <= 1 or len(files) < POOL_FILES:
            return
        sample = files[:16]
        if self._cache is not None:
            known = self._cache.load_dirs({d for d, _, _ in sample})
            if any(name in known.get(d, {}) for d, name, _ in sample):
                return
        limit = self._whole_limit(link)
        small = [f for f in files if f[2].st_size < limit]
        ahead = self._ahead_for(len(small), sum(f[2].st_size for f in small))
        if ahead is not None:
            self._guarded(ahead.add, small)

    def read_ahead(self, files: Sequence[LocalFile], *, link: bool = False) -> None:
        """More files found by a walk the workers read ahead of (see ``expect``)."""
        if self._ahead is not None:
            limit = self._whole_limit(link)
            self._guarded(self._ahead.add, [f for f in files if f[2].st_size < limit])

    def _ahead_for(self, count: int, size: int) -> ReadAhead | None:
        """The worker processes for a job of ``count`` files (``size`` bytes), started with
        the first job big enough for them; None: this process reads (a small job, one worker,
        a modest job on a busy machine (``worth_workers``), or a store that is not this
        machine's embedded one). On a busy machine the walk's first files (``expect``) are a
        modest job: the workers of a large one start when ``stage`` has the whole of it."""
        if self._ahead is not None:
            return self._ahead
        if self._workers <= 1 or (count < POOL_FILES and size < POOL_BYTES) or count < 2:
            return None
        if size < POOL_MEAN_BYTES * count:
            return None
        if not self._chosen and not worth_workers(count, size, runnable(), os.cpu_count() or 1):
            return None  # a busy machine (asked again for the whole job when ``stage`` runs)
        blobs = self._local_blobs
        if blobs is None:
            return None
        # Imported here: a re-log starts no worker and needs neither (nor subprocess, pickle...).
        from cairn.sdk._read_ahead import ReadAhead
        from cairn.sdk._stage_pool import StagePool

        try:
            # This process reads a share too: it and ``workers - 1`` worker processes.
            pool = StagePool(self._workers - 1, blobs.root, blobs.small_limit, blobs.durable)
        except OSError:
            return None  # no interpreter to start (an embedded Python, say): read here
        self._ahead = ReadAhead(pool, self._buffer_extend)
        return self._ahead

    def _guarded(self, step: Callable[[list[LocalFile]], None], files: list[LocalFile]) -> None:
        try:
            step(files)
        except BaseException:
            self.abandon_workers()
            raise

    def _read_small(
        self,
        files: Sequence[LocalFile],
        small: list[int],
        started: int,
        ahead: ReadAhead | None,
        more: bool,
    ) -> Iterator[ReadRun]:
        """The files of ``small``, in order, a run at a time: shared with the workers (their
        blobs stored by whoever read them), or all read here."""
        if ahead is None:
            yield from read_here(files, small, started)
            return
        try:
            k = 0
            for answers in ahead.take(files, small, last=not more):
                digests, sizes, keys = zip(*answers, strict=True)
                yield ReadRun(small[k : k + len(answers)], digests, sizes, keys, None)
                k += len(answers)
        except BaseException:
            self.abandon_workers()
            raise

    def _read_large(self, index: int, file: LocalFile, link: bool, started: int) -> ReadRun:
        d, name, st = file
        path = os.path.join(d, name)
        info = self._service.store_file(path, link=link)
        st_after = os.stat(path)
        if st_after.st_size != info.size or stat_key(st_after) != stat_key(st):
            raise changed_while_reading(path)
        key = None if is_racy(st_after, started) else stat_key(st_after)
        return ReadRun((index,), (info.digest,), (info.size,), (key,), None)

    def abandon_workers(self) -> None:
        """End the worker processes at once (a failed walk or read): what they stored is
        unreferenced (gc sweeps it), what they had not written is dropped."""
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            ahead.pool.close(kill=True)

    def stage_bytes(self, data: bytes) -> StagedFile:
        """Store content that is not in a file (objects added with ``Artifact.add``)."""
        digest = digest_bytes(data)
        if self._stored is not None:
            self._stored.add(digest)
        if len(data) >= BATCH_LIMIT:
            self._service.store_blobs([(digest, data)])
        else:
            self._buffer_add(digest, data)
        return StagedFile(digest, len(data))

    def stage_page(self, digest: str, data: bytes) -> None:
        """Store a manifest page (its digest computed by the caller), buffered like a small file."""
        if len(data) >= SMALL_LIMIT:
            self._service.store_blobs([(digest, data)])
        else:
            self._buffer_add(digest, data)

    def add_tree(self, root: str, local_root: str, prefix: str) -> None:
        """Remember that the manifest ``root`` holds the files below ``local_root`` as entries
        ``prefix + relative path`` (so ``restore`` can find them without a map per file)."""
        self._trees.append((root, local_root, prefix))

    def _buffer_add(self, digest: str, data: bytes) -> None:
        self._buffer_extend([(digest, data)], len(data))

    def _buffer_extend(self, items: list[tuple[str, bytes]], size: int) -> None:
        with self._lock:
            self._buffer.extend(items)
            self._buffer_bytes += size
            full = self._buffer_bytes >= self._flush_bytes or len(self._buffer) >= FLUSH_COUNT
            if self._ahead is not None and write_early(len(self._buffer), self._buffer_bytes):
                full = full or self._writes.idle()  # an idle writer
        if full:
            self._write_behind()

    def _write_behind(self) -> None:
        """Hand the full buffer to a background writer; reading goes on meanwhile."""
        with self._lock:
            batch, self._buffer, self._buffer_bytes = self._buffer, [], 0
            self._writes.write(self._service, batch)

    def release_workers(self) -> None:
        """The worker processes' blobs written durably, and the workers ended (at the end of a
        directory: they are not kept while the caller does other work)."""
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            # This process's last blobs of the job go to its writer now, while the workers
            # write theirs and the caller goes on (entries, the commit's pages).
            self._write_behind()
            try:
                ahead.drain()  # answers of files no one asked for (e.g. the stat cache had them)
                ahead.pool.flush()
            finally:
                ahead.pool.close()

    def flush(self, *, hold_small: bool = False) -> None:
        """Make every buffered blob durable in the store (waits for background writes and for
        the worker processes, which then end: a pool lives for one directory's staging).

        ``hold_small`` (before ``commit``): a buffer of a few blobs for the embedded store is
        kept, and ``commit`` hands it to the store to write with the commit's pages, in one
        write and one flush instead of two (a re-log with one file changed)."""
        self.release_workers()
        if not (hold_small and self._holdable()):
            self._write_behind()
        self._writes.wait()

    def _holdable(self) -> bool:
        with self._lock:
            few = len(self._buffer) <= HELD_BLOBS and self._buffer_bytes <= HELD_BYTES
        return few and bool(self._stored) and self._embedded() is not None

    def restore(self, digests: Sequence[str]) -> None:
        """Store again blobs the store reports missing, from the local files they came from
        (``_restore.py``)."""
        from cairn.sdk._restore import restore

        sources = self._sources
        for files, positions, found in self._found:
            for i, digest in zip(positions, found, strict=True):
                if digest not in sources:
                    sources[digest] = files[i][:2]
        self._found.clear()
        restore(self._service, sources, self._trees, digests, self._flush_bytes, self.settings)

    def commit(self, request: CommitRequest) -> CommitResult:
        """``Service.commit``; the embedded store is told the blobs stored since its sweep count,
        and given the blobs ``flush(hold_small=True)`` held, to store with the commit's pages
        (put back in the buffer if the commit fails: they are counted as stored)."""
        local = self._embedded() if self._stored else None
        if local is None or not self._stored:
            self.flush()
            return self._service.commit(request)
        with self._lock:
            held, self._buffer, self._buffer_bytes = self._buffer, [], 0
        try:
            return local.commit(request, stored=self._stored, sweeps=self._sweeps, held=held)
        except BaseException:
            self._buffer_extend(held, sum(len(data) for _, data in held))
            raise

    def upsert(self, request: StageRequest) -> VersionRecord:
        """``Service.stage``; the embedded store is told the blobs stored since its sweep count
        (as ``commit``): it looks up only the others."""
        local = self._embedded() if self._stored else None
        if local is None or not self._stored:
            return self._service.stage(request)
        return local.stage(request, stored=self._stored, sweeps=self._sweeps)

    def _embedded(self) -> LocalService | None:
        if self._local_blobs is None:
            return None  # not this machine's embedded store (LocalService not even imported)
        from cairn.service import LocalService

        return self._service if isinstance(self._service, LocalService) else None

    def commit_with_blobs(
        self, commit: Callable[[], CommitResult], *, hold_small: bool = False
    ) -> CommitResult:
        """The one way a commit (``commit`` or ``finish``) makes sure the store has its blobs.

        Buffered blobs are flushed, then ``commit`` runs; a store that reports blobs missing
        (gc swept them, or they were never stored here) gets them again from the local files
        and ``commit`` runs once more, up to ``STORE_AGAIN_ATTEMPTS`` times (a gc with grace 0
        may sweep what was just stored again). Still missing: an error, never a partial version.
        ``hold_small``: ``commit`` is ``self.commit`` (see ``flush``).
        """
        self.flush(hold_small=hold_small)
        result = commit()
        for _ in range(STORE_AGAIN_ATTEMPTS):
            if not result.missing:
                return result
            self.restore(result.missing)
            result = commit()
        if result.missing:
            raise CommError(
                f"the store at {self._service.location} lost {len(result.missing)} blobs while"
                f" logging, again after they were stored again {STORE_AGAIN_ATTEMPTS} times (e.g."
                f" {result.missing[0]}): is a gc with a grace period of 0 running in a loop?"
                " Log the artifact again"
            )
        return result

    def stage_with_blobs(self, stage: Callable[[], T], digests: Sequence[str]) -> T:
        """``stage`` (an upsert) once every blob of ``digests`` is in the store; a store that
        swept some meanwhile (``BlobNotFoundError``) gets them again, as ``commit_with_blobs``.

        The embedded store's ``stage`` looks every blob up itself (in this process, before its
        transaction), so its buffered blobs are flushed and it is asked at once: looking them up
        here first doubled the lookups of eight processes upserting at once. A server's upsert
        sends every change, so its blobs are made sure of first."""
        if self._embedded() is not None:
            self.flush()
        else:
            self.ensure_present(digests)
        for _ in range(STORE_AGAIN_ATTEMPTS):
            try:
                return stage()
            except BlobNotFoundError:
                self.ensure_present(digests)
        return stage()

    def ensure_present(self, digests: Sequence[str]) -> None:
        """Flush, then store whatever of ``digests`` the store still lacks."""
        self.flush()
        missing = self._service.missing_blobs(list(dict.fromkeys(digests)))
        if missing:
            self.restore(missing)
