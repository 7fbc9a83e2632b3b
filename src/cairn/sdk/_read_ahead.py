"""Sharing a first log's reading between the staging workers and the calling process, as the
walk goes on (issue 13, item 3).

``ReadAhead`` owns the ``StagePool`` of one directory's staging. Files are handed to it as the
walk finds them (``add``), not once the walk is over: a chunk of them goes to a worker while that
worker has fewer than ``AHEAD`` chunks it has not answered, else this process reads and hashes it
at once (its blobs go to the stager's buffer). So the workers start reading while the caller
still walks, neither side waits for the other, and how much each reads follows how fast each
is (a loaded core reads less). ``take`` gives the staged result of each file, (digest, size,
stat key), in the order the files were found: a chunk at a time, checked against the files
asked for with one list comparison (no per-file lookups: they cost the caller ~1.5 us a file).
Files asked for in another order, or never handed in, are matched by name, or read here. A
worker's answers are taken in as they come (``StagePool.poll``), so a worker never waits for
its pipe to be read.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence

from cairn.sdk._stage_pool import AHEAD, StagePool
from cairn.sdk._statcache import now_ns
from cairn.sdk._whole import CHUNK_BYTES, CHUNK_FILES, FileDone, FileJob, read_whole

LocalFile = tuple[str, str, os.stat_result]  # directory, name, stat
Blobs = list[tuple[str, bytes]]


class _Chunk:
    """Files given to one reader: a worker (``worker >= 0``, ``done`` None until its answer is
    read) or this process (``worker == -1``)."""

    __slots__ = ("done", "files", "worker")

    def __init__(self, files: list[LocalFile], worker: int, done: list[FileDone] | None) -> None:
        self.files = files
        self.worker = worker
        self.done = done


class ReadAhead:
    """Files of one job read by the pool's workers and this process, shared as they are found."""

    def __init__(self, pool: StagePool, store: Callable[[Blobs, int], None]) -> None:
        self.pool = pool
        self._store = store  # takes the blobs this process read (and their bytes)
        self._pending: list[LocalFile] = []  # found, not yet given to a reader
        self._pending_bytes = 0
        self._chunks: deque[_Chunk] = deque()  # given out, in the order found, not yet taken
        self._taken = 0  # files of the first chunk taken already

    def add(self, files: Iterable[LocalFile]) -> None:
        """Files found (smaller than the job's whole-read limit), each once: read them soon."""
        for file in files:
            self._pending.append(file)
            self._pending_bytes += file[2].st_size
        self._feed(final=False)

    def take(self, files: Sequence[LocalFile], positions: list[int]) -> Iterator[FileDone]:
        """The (digest, size, stat key) of ``files[i]`` for each of ``positions``, in order."""
        if not self._chunks and not self._pending:
            self.add(files[i] for i in positions)  # nothing found ahead: these are the job
        self._feed(final=True)
        k, count = 0, len(positions)
        while k < count:
            if not self._chunks:
                break
            chunk, start = self._chunks[0], self._taken
            m = min(len(chunk.files) - start, count - k)
            if chunk.files[start : start + m] != [files[i] for i in positions[k : k + m]]:
                break  # asked for in another order (or some never handed in)
            done = chunk.done if chunk.done is not None else self._answer(chunk)
            yield from done[start : start + m]
            k += m
            if start + m == len(chunk.files):
                self._chunks.popleft()
                self._taken = 0
            else:
                self._taken = start + m
        if k < count:
            yield from self._by_name(files, positions[k:])

    def drain(self) -> None:
        """Every worker's answer read (the files no one asked for: their blobs are stored, and
        unreferenced unless a version names them)."""
        while self._chunks:
            chunk = self._chunks.popleft()
            if chunk.done is None:
                self._answer(chunk)
        self._taken = 0
        self._pending.clear()
        self._pending_bytes = 0

    def _by_name(self, files: Sequence[LocalFile], positions: list[int]) -> Iterator[FileDone]:
        """The slow way: every answer so far kept by (directory, name); files no reader had
        are read here."""
        found: dict[tuple[str, str], FileDone] = {}
        start = self._taken
        while self._chunks:
            chunk = self._chunks.popleft()
            done = chunk.done if chunk.done is not None else self._answer(chunk)
            for (d, name, _), answer in zip(chunk.files[start:], done[start:], strict=True):
                found[(d, name)] = answer
            start = 0
        self._taken = 0
        for i in positions:
            d, name, st = files[i]
            known = found.get((d, name))
            if known is not None:
                yield known
                continue
            whole = read_whole(
                os.path.join(d, name), st.st_size, st.st_mtime_ns, st.st_ctime_ns, now_ns()
            )
            self._store([(whole.digest, whole.data)], st.st_size)
            yield (whole.digest, st.st_size, whole.key)

    def _feed(self, *, final: bool) -> None:
        """Give out whole chunks of the files found (``final``: all of them) to the workers
        that have room, reading the others here."""
        pending = self._pending
        pool = self.pool
        while pending and (
            final or len(pending) >= CHUNK_FILES or self._pending_bytes >= CHUNK_BYTES
        ):
            count = size = 0
            for _, _, st in pending:
                count += 1
                size += st.st_size
                if count >= CHUNK_FILES or size >= CHUNK_BYTES:
                    break
            files = pending[:count]
            del pending[:count]
            self._pending_bytes -= size
            started = now_ns()
            pool.poll()
            worker = min(range(pool.size), key=pool.backlog)
            if pool.backlog(worker) < AHEAD:
                jobs: list[FileJob] = [
                    (d, name, st.st_size, st.st_mtime_ns, st.st_ctime_ns) for d, name, st in files
                ]
                pool.submit(worker, jobs, started)
                self._chunks.append(_Chunk(files, worker, None))
            else:
                self._chunks.append(_Chunk(files, -1, self._read_here(files, started)))

    def _read_here(self, files: list[LocalFile], started: int) -> list[FileDone]:
        blobs: Blobs = []
        done: list[FileDone] = []
        size = 0
        for d, name, st in files:
            file_size = st.st_size
            whole = read_whole(
                os.path.join(d, name), file_size, st.st_mtime_ns, st.st_ctime_ns, started
            )
            blobs.append((whole.digest, whole.data))
            size += file_size
            done.append((whole.digest, file_size, whole.key))
        self._store(blobs, size)
        return done

    def _answer(self, chunk: _Chunk) -> list[FileDone]:
        """A worker's answer for ``chunk`` (each worker answers in the order it was sent
        chunks, and chunks are taken in the order they were given out)."""
        chunk.done = self.pool.answer(chunk.worker)
        return chunk.done
