"""Sharing a first log's reading between the staging workers and the calling process, as the
walk goes on (issue 13, item 3).

``ReadAhead`` owns the ``StagePool`` of one directory's staging. Files are handed to it as the
walk finds them (``add``) and cut into chunks (256 files or 8 MiB) in the order found; each
worker is sent the first chunks no one has while it holds fewer than ``AHEAD`` unanswered, so
the workers read while the caller walks. The caller reads nothing during the walk: ``take``
gives the staged result of each file, (digest, size, stat key), in the order the files were
found, a chunk at a time, and whenever the next chunk's worker has not answered yet, the caller
reads the *last* chunk no worker has (the workers read from the front, the caller from the
back, until they meet). So the caller's own work on the answers (between the chunks it takes)
overlaps the workers' reading instead of following it, and how much each side reads follows
how fast each is (a loaded core reads less). Before, the caller read a chunk whenever the
workers had two unanswered during the walk, and worked on all the answers after it: the worker
waited 0.1-0.25 s of a 0.35-0.75 s run for chunks, under load.

Answers are checked against the files asked for with one list comparison per chunk (no
per-file lookups: they cost the caller ~1.5 us a file). Files asked for in another order, or
never handed in, are matched by name, or read here. A worker's answers are taken in as they come
(``StagePool.poll``), so a worker never waits for its pipe to be read.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence

from cairn.sdk._stage_pool import AHEAD, StagePool
from cairn.sdk._statcache import now_ns
from cairn.sdk._whole import (
    CHUNK_BYTES,
    CHUNK_FILES,
    Directories,
    FileDone,
    FileJob,
    read_whole,
)

LocalFile = tuple[str, str, os.stat_result]  # directory, name, stat
Blobs = list[tuple[str, bytes]]


class _Chunk:
    """Files given to one reader: a worker (``worker >= 0``, ``done`` None until its answer is
    read), this process (``worker == -1``), or no one yet (``worker`` None)."""

    __slots__ = ("done", "files", "worker")

    def __init__(self, files: list[LocalFile]) -> None:
        self.files = files
        self.worker: int | None = None
        self.done: list[FileDone] | None = None


class ReadAhead:
    """Files of one job read by the pool's workers and this process, shared as they are found."""

    def __init__(self, pool: StagePool, store: Callable[[Blobs, int], None]) -> None:
        self.pool = pool
        self._store = store  # takes the blobs this process read (and their bytes)
        self._pending: list[LocalFile] = []  # found, not yet a whole chunk
        self._pending_bytes = 0
        self._chunks: deque[_Chunk] = deque()  # in the order found, not yet taken
        self._unsent: deque[_Chunk] = deque()  # of those, the ones no reader has yet
        self._taken = 0  # files of the first chunk taken already
        self._last = False  # no file of the job comes after those taken (``take``)

    def add(self, files: Iterable[LocalFile]) -> None:
        """Files found (smaller than the job's whole-read limit), each once: the workers read
        them soon (this process reads only once the walk is over: ``take``)."""
        for file in files:
            self._pending.append(file)
            self._pending_bytes += file[2].st_size
        self._split(final=False)
        self._send()

    def take(
        self, files: Sequence[LocalFile], positions: list[int], *, last: bool = True
    ) -> Iterator[list[FileDone]]:
        """The (digest, size, stat key) of ``files[i]`` for each of ``positions``, in order, a
        run of them (up to a chunk's) at a time.

        While the next chunk's worker has not answered, this process reads the last chunk no
        worker has yet: the workers read from the front, this process from the back, and the
        caller's work on the answers (between the chunks taken) overlaps the workers' reading.
        ``last``: no file of the job comes after these (``more`` of ``Stager.stage``): once the
        workers have been sent their last chunk they are asked to write their blobs durably
        (``StagePool.flush_soon``), which they do while this process works on the answers."""
        if not self._chunks and not self._pending:
            self.add(files[i] for i in positions)  # nothing found ahead: these are the job
        self._split(final=True)
        self._last = last
        k, count = 0, len(positions)
        while k < count:
            self._send()
            if not self._chunks:
                break
            chunk, start = self._chunks[0], self._taken
            m = min(len(chunk.files) - start, count - k)
            if chunk.files[start : start + m] != [files[i] for i in positions[k : k + m]]:
                break  # asked for in another order (or some never handed in)
            done = self._done(chunk)
            yield done if m == len(done) else done[start : start + m]
            k += m
            if start + m == len(chunk.files):
                self._chunks.popleft()
                self._taken = 0
            else:
                self._taken = start + m
        if k < count:
            yield list(self._by_name(files, positions[k:]))

    def drain(self) -> None:
        """Every worker's answer read (the files no one asked for: their blobs are stored, and
        unreferenced unless a version names them); files no reader had are dropped."""
        self._unsent.clear()
        while self._chunks:
            chunk = self._chunks.popleft()
            if chunk.done is None and chunk.worker is not None:
                self._answer(chunk)
        self._taken = 0
        self._pending.clear()
        self._pending_bytes = 0

    def _done(self, chunk: _Chunk) -> list[FileDone]:
        """The answer for ``chunk``, the first in order: read here if no worker has it; while
        its worker has not answered, the last chunk no worker has is read here meanwhile."""
        if chunk.done is not None:
            return chunk.done
        if chunk.worker is None:
            self._unsent.remove(chunk)  # the first unsent: at the front
            return self._read_here(chunk)
        pool = self.pool
        while self._unsent:
            pool.poll()
            if pool.answered(chunk.worker):
                break
            self._read_here(self._unsent.pop())
            self._send()
        return self._answer(chunk)

    def _by_name(self, files: Sequence[LocalFile], positions: list[int]) -> Iterator[FileDone]:
        """The slow way: every answer so far kept by (directory, name); files no reader had
        are read here."""
        found: dict[tuple[str, str], FileDone] = {}
        start = self._taken
        self._unsent.clear()
        while self._chunks:
            chunk = self._chunks.popleft()
            if chunk.done is None and chunk.worker is None:
                continue  # read below, if asked for
            done = chunk.done if chunk.done is not None else self._answer(chunk)
            for (d, name, _), answer in zip(chunk.files[start:], done[start:], strict=True):
                found[(d, name)] = answer
            start = 0
        self._taken = 0
        with Directories() as dirs:
            for i in positions:
                d, name, st = files[i]
                known = found.get((d, name))
                if known is not None:
                    yield known
                    continue
                digest, data, key = read_whole(
                    dirs, d, name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, now_ns()
                )
                self._store([(digest, data)], st.st_size)
                yield (digest, st.st_size, key)

    def _split(self, *, final: bool) -> None:
        """Whole chunks of the files found (``final``: all of them) made ready to give out."""
        pending = self._pending
        while pending and (
            final or len(pending) >= CHUNK_FILES or self._pending_bytes >= CHUNK_BYTES
        ):
            count = size = 0
            for _, _, st in pending:
                count += 1
                size += st.st_size
                if count >= CHUNK_FILES or size >= CHUNK_BYTES:
                    break
            chunk = _Chunk(pending[:count])
            del pending[:count]
            self._pending_bytes -= size
            self._chunks.append(chunk)
            self._unsent.append(chunk)

    def _send(self) -> None:
        """Give the first chunks no reader has to the workers with room (fewer than ``AHEAD``
        chunks unanswered), so none waits while this process walks or works on answers."""
        unsent = self._unsent
        pool = self.pool
        if unsent:
            pool.poll()
        while unsent:
            worker = min(range(pool.size), key=pool.backlog)
            if pool.backlog(worker) >= AHEAD:
                return
            chunk = unsent.popleft()
            jobs: list[FileJob] = [
                (d, name, st.st_size, st.st_mtime_ns, st.st_ctime_ns) for d, name, st in chunk.files
            ]
            pool.submit(worker, jobs, now_ns())
            chunk.worker = worker
        if self._last and not self._pending:
            pool.flush_soon()  # every chunk of the job is given out: no worker gets another

    def _read_here(self, chunk: _Chunk) -> list[FileDone]:
        chunk.worker = -1
        started = now_ns()
        blobs: Blobs = []
        done: list[FileDone] = []
        size = 0
        with Directories() as dirs:
            for d, name, st in chunk.files:
                file_size = st.st_size
                digest, data, key = read_whole(
                    dirs, d, name, file_size, st.st_mtime_ns, st.st_ctime_ns, started
                )
                blobs.append((digest, data))
                size += file_size
                done.append((digest, file_size, key))
        self._store(blobs, size)
        chunk.done = done
        return done

    def _answer(self, chunk: _Chunk) -> list[FileDone]:
        """A worker's answer for ``chunk`` (each worker answers in the order it was sent
        chunks, and chunks are taken in the order they were given out)."""
        assert chunk.worker is not None
        chunk.done = self.pool.answer(chunk.worker)
        return chunk.done
