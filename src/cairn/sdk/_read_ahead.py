"""Sharing a first log's reading between the staging workers and the calling process, as the
walk goes on (issue 13, item 3).

``ReadAhead`` owns the ``StagePool`` of one directory's staging. Files are handed to it as the
walk finds them (``add``), not once the walk is over: a chunk of them goes to a worker while that
worker has fewer than ``AHEAD`` chunks it has not answered, else this process reads and hashes it
at once (its blobs go to the stager's buffer). So the workers start reading while the caller
still walks, neither side waits for the other, and how much each reads follows how fast each
is (a loaded core reads less). ``take`` gives the staged result of each file: (digest, size,
stat key), kept by (directory, name) until taken. A worker's answers are taken in as they come
(``StagePool.poll``), so a worker never waits for its pipe to be read.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence

from cairn.sdk._stage_pool import AHEAD, FileDone, FileJob, StagePool, read_whole
from cairn.sdk._statcache import now_ns

CHUNK_FILES = 256  # files read by one reader at a time
CHUNK_BYTES = 8 << 20

LocalFile = tuple[str, str, os.stat_result]  # directory, name, stat
Blobs = list[tuple[str, bytes]]


class ReadAhead:
    """Files of one job read by the pool's workers and this process, shared as they are found."""

    def __init__(self, pool: StagePool, store: Callable[[Blobs, int], None]) -> None:
        self.pool = pool
        self._store = store  # takes the blobs this process read (and their bytes)
        self._pending: list[LocalFile] = []  # found, not yet given to a reader
        self._pending_bytes = 0
        self._assigned: set[tuple[str, str]] = set()  # found and not yet taken
        self._window: deque[tuple[int, list[LocalFile]]] = deque()  # chunks sent, unanswered
        self._done: dict[tuple[str, str], FileDone] = {}

    def add(self, files: Iterable[LocalFile]) -> None:
        """Files found (smaller than the job's whole-read limit): read them soon."""
        assigned = self._assigned
        for file in files:
            key = (file[0], file[1])
            if key not in assigned:
                assigned.add(key)
                self._pending.append(file)
                self._pending_bytes += file[2].st_size
        self._feed(final=False)

    def take(self, files: Sequence[LocalFile], positions: list[int]) -> Iterator[FileDone]:
        """The (digest, size, stat key) of ``files[i]`` for each of ``positions``, in order."""
        self.add(files[i] for i in positions)
        self._feed(final=True)
        done, assigned = self._done, self._assigned
        for i in positions:
            d, name, st = files[i]
            key = (d, name)
            while key not in done and self._window:
                self._answer()
            found = done.pop(key, None)
            if found is None:  # the same file twice in one job: read again here
                whole = read_whole(
                    os.path.join(d, name), st.st_size, st.st_mtime_ns, st.st_ctime_ns, now_ns()
                )
                self._store([(whole.digest, whole.data)], st.st_size)
                found = (whole.digest, st.st_size, whole.key)
            assigned.discard(key)
            yield found

    @property
    def idle(self) -> bool:
        """Nothing found is left untaken."""
        return not self._assigned

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
            chunk = pending[:count]
            del pending[:count]
            self._pending_bytes -= size
            started = now_ns()
            pool.poll()
            worker = min(range(pool.size), key=pool.backlog)
            if pool.backlog(worker) < AHEAD:
                jobs: list[FileJob] = [
                    (d, name, st.st_size, st.st_mtime_ns, st.st_ctime_ns) for d, name, st in chunk
                ]
                pool.submit(worker, jobs, started)
                self._window.append((worker, chunk))
            else:
                self._read_here(chunk, started)

    def _read_here(self, chunk: list[LocalFile], started: int) -> None:
        blobs: Blobs = []
        size = 0
        done = self._done
        for d, name, st in chunk:
            file_size = st.st_size
            whole = read_whole(
                os.path.join(d, name), file_size, st.st_mtime_ns, st.st_ctime_ns, started
            )
            blobs.append((whole.digest, whole.data))
            size += file_size
            done[(d, name)] = (whole.digest, file_size, whole.key)
        self._store(blobs, size)

    def _answer(self) -> None:
        worker, chunk = self._window.popleft()
        done = self._done
        for (d, name, _), answer in zip(chunk, self.pool.answer(worker), strict=True):
            done[(d, name)] = answer
