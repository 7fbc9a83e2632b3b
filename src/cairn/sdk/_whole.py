"""Reading a new file whole: the one reader of a first log's small files, in the calling process
and in the staging workers alike (``_stage_pool.py``, ``_read_ahead.py``), and what a job of them
is made of.

Kept apart from the worker pool so that a re-log, which starts no worker, imports neither the
pool nor what it needs (subprocess, select, pickle, signal); and a worker imports this module,
so it loads nothing a worker does not use (no ``typing`` at run time: ``tests/test_imports.py``).
"""

from __future__ import annotations

import os

from cairn._lazy import TYPE_CHECKING
from cairn.core import digest_bytes
from cairn.errors import ValidationError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from cairn.core import Digest

CHUNK_FILES = 256  # files read by one reader at a time
CHUNK_BYTES = 8 << 20
RACY_NS = 50_000_000  # as ``_statcache.RACY_NS``: a file changed this recently is not cached
# A reader of a job shared with workers (the caller and each worker) hands its buffer of small
# blobs to its writer as soon as the writer is idle and the buffer holds this many blobs and
# bytes, not only when it is full (32 MiB): the writes go on while it reads, and what is left to
# write when the reading ends is what was read during the last write. Large blobs (img's 200
# KiB) never reach the count before the bytes fill a buffer: their batches stay as they were.
EARLY_BLOBS = 1024
EARLY_BYTES = 4 << 20  # the store's ``OWN_PACK``: such a batch is written before its turn

_O_RDONLY = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
DIR_FLAGS = _O_RDONLY | getattr(os, "O_DIRECTORY", 0)  # a directory opened to list it
_BY_DIR = os.open in os.supports_dir_fd
# A directory opened only to look its files up in: ``O_PATH`` (Linux) asks no permission to read
# it, so a directory one may pass through but not list (mode 0711, shared home directories)
# serves as its whole path does; elsewhere a refused open falls back to the whole path.
_LOOKUP_FLAGS = (getattr(os, "O_PATH", 0) or os.O_RDONLY) | getattr(os, "O_DIRECTORY", 0)
_LOOKUP_FLAGS |= getattr(os, "O_CLOEXEC", 0)

StatKey = tuple[int, int, int, int, int]
FileJob = tuple[str, str, int, int, int]  # directory, name, size, mtime_ns, ctime_ns (as walked)
FileDone = tuple[str, int, StatKey | None]  # digest, size, stat key (None: racy, not cached)
LocalFile = tuple[str, str, os.stat_result]  # directory, name, stat

# While more processes are runnable than the machine has cores, no core is idle for a worker:
# it would only add its start and the protocol's work to a busy machine. A job this small (files
# and bytes) then stays in this process when the settings chose no number (eight processes each
# adding a 2,500-file shard of s1 on 2 cores: 2.4 s of CPU with a worker each, 1.35-1.59 s without).
BUSY_FILES = 10_000
BUSY_BYTES = 256 << 20


def default_workers() -> int:
    """Processes that may stage a big job when the settings name no number
    (``CAIRN_STAGE_WORKERS`` unset): one per core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def changed_while_reading(path: str) -> ValidationError:
    return ValidationError(
        f"file {path} changed while cairn was reading it; add it again once it is complete"
    )


class Directories:
    """The directory of the files being read, held open: each file is opened by its name relative
    to it (``openat``), not by its whole path looked up again component by component, in every
    reader of a first log (the calling process and the workers). Files come a directory at a
    time (a walk's order, a chunk's), so one descriptor is kept; ``close`` (or ``with``) ends it."""

    __slots__ = ("_fd", "_path")

    def __init__(self) -> None:
        self._path: str | None = None
        self._fd = -1

    def open(self, directory: str, name: str) -> int:
        """A descriptor of ``name`` in ``directory``, read-only (``OSError`` as ``os.open``'s)."""
        if not _BY_DIR:
            return os.open(os.path.join(directory, name), _O_RDONLY)
        if directory != self._path:
            self.close()
            try:
                self._fd = os.open(directory, _LOOKUP_FLAGS)
            except PermissionError:  # one may pass through it, not open it: by its whole path
                return os.open(os.path.join(directory, name), _O_RDONLY)
            self._path = directory
        return os.open(name, _O_RDONLY, dir_fd=self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._path = -1, None

    def __enter__(self) -> Directories:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_whole(
    dirs: Directories,
    directory: str,
    name: str,
    size: int,
    mtime_ns: int,
    ctime_ns: int,
    started: int,
) -> tuple[Digest, bytes, StatKey | None]:
    """Read and hash the file ``name`` in ``directory``, of ``size`` bytes (as walked), checking
    it did not change meanwhile; opened through ``dirs``: its (digest, content, stat key), the
    key None when the file must not be cached (racy). An error names the file's whole path.

    Unbuffered: one read of size+1 bytes both gets the content and shows it is all. This runs
    once per file of every tree added (in the calling process or a worker), so the stat key and
    the racy rule are inlined, the path is joined only for an error, and the answer is a plain
    tuple (a named tuple's constructor is a Python call: ~0.3 us a file)."""
    try:
        fd = dirs.open(directory, name)
    except OSError as exc:
        exc.filename = os.path.join(directory, name)  # the whole path, not the name alone
        raise
    try:
        data = os.read(fd, size + 1)
        st = os.fstat(fd)
    finally:
        os.close(fd)
    mtime, ctime = st.st_mtime_ns, st.st_ctime_ns
    if len(data) != st.st_size or (st.st_size, mtime, ctime) != (size, mtime_ns, ctime_ns):
        raise changed_while_reading(os.path.join(directory, name))
    key = (
        None
        if max(mtime, ctime) >= started - RACY_NS
        else (st.st_dev, st.st_ino, size, mtime, ctime)
    )
    return digest_bytes(data), data, key


def write_early(count: int, size: int) -> bool:
    """Whether a buffer of ``count`` blobs (``size`` bytes) goes to an idle writer now."""
    return count >= EARLY_BLOBS and size >= EARLY_BYTES


def runnable() -> int | None:
    """Processes runnable on this machine now, this one included (``/proc/loadavg``'s fourth
    field, "runnable/total"); None where the system does not say."""
    try:
        with open("/proc/loadavg", "rb") as f:
            return int(f.read().split()[3].split(b"/")[0])
    except (OSError, IndexError, ValueError):
        return None


def worth_workers(count: int, size: int, running: int | None, cores: int) -> bool:
    """Whether a job of ``count`` files (``size`` bytes) that is big enough for worker processes
    gets them when the settings chose no number, with ``running`` processes runnable on a
    machine of ``cores`` cores: not a modest job (under ``BUSY_FILES`` and ``BUSY_BYTES``) while
    more processes are runnable than there are cores (no core is idle for a worker)."""
    if running is None or running <= cores:
        return True
    return count >= BUSY_FILES or size >= BUSY_BYTES


class ReadRun:
    """Files read and hashed, a run of them at a time (``Stager._read_all``, ``read_here``)."""

    __slots__ = ("blobs", "digests", "keys", "positions", "sizes")

    def __init__(
        self,
        positions: Sequence[int],  # their places in the files staged
        digests: Sequence[str],
        sizes: Sequence[int],
        keys: Sequence[StatKey | None],  # None where a file must not be cached (racy)
        blobs: list[tuple[str, bytes]] | None,  # to buffer; None: stored already (by a worker)
    ) -> None:
        self.positions = positions
        self.digests = digests
        self.sizes = sizes
        self.keys = keys
        self.blobs = blobs


def read_here(files: Sequence[LocalFile], positions: list[int], started: int) -> Iterator[ReadRun]:
    """The files at ``positions`` read and hashed in this process, a run (a chunk's files or
    bytes) at a time, their blobs to buffer."""
    run: list[int] = []
    digests: list[str] = []
    sizes: list[int] = []
    keys: list[StatKey | None] = []
    blobs: list[tuple[str, bytes]] = []
    size = 0
    with Directories() as dirs:
        for i in positions:
            d, name, st = files[i]
            file_size = st.st_size
            digest, data, key = read_whole(
                dirs, d, name, file_size, st.st_mtime_ns, st.st_ctime_ns, started
            )
            run.append(i)
            digests.append(digest)
            sizes.append(file_size)
            keys.append(key)
            blobs.append((digest, data))
            size += file_size
            if len(run) >= CHUNK_FILES or size >= CHUNK_BYTES:
                yield ReadRun(run, digests, sizes, keys, blobs)
                run, digests, sizes, keys, blobs, size = [], [], [], [], [], 0
    if run:
        yield ReadRun(run, digests, sizes, keys, blobs)
