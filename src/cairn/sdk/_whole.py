"""Reading a new file whole: the one reader of a first log's small files, in the calling process
and in the staging workers alike (``_stage_pool.py``, ``_read_ahead.py``), and what a job of them
is made of.

Kept apart from the worker pool so that a re-log, which starts no worker, imports neither the
pool nor what it needs (subprocess, select, pickle, signal).
"""

from __future__ import annotations

import os
from typing import NamedTuple

from cairn.core import Digest, digest_bytes
from cairn.errors import ValidationError

CHUNK_FILES = 256  # files read by one reader at a time
CHUNK_BYTES = 8 << 20
RACY_NS = 50_000_000  # as ``_statcache.RACY_NS``: a file changed this recently is not cached
_O_RDONLY = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)

StatKey = tuple[int, int, int, int, int]
FileJob = tuple[str, str, int, int, int]  # directory, name, size, mtime_ns, ctime_ns (as walked)
FileDone = tuple[str, int, StatKey | None]  # digest, size, stat key (None: racy, not cached)


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


class WholeFile(NamedTuple):
    digest: Digest
    data: bytes
    key: StatKey | None  # None when the file must not be cached (racy)


def read_whole(path: str, size: int, mtime_ns: int, ctime_ns: int, started: int) -> WholeFile:
    """Read and hash a file of ``size`` bytes (as walked), checking it did not change meanwhile.

    Unbuffered: one read of size+1 bytes both gets the content and shows it is all. This runs
    once per file of every tree added (in the calling process or a worker), so the stat key and
    the racy rule are inlined."""
    fd = os.open(path, _O_RDONLY)
    try:
        data = os.read(fd, size + 1)
        st = os.fstat(fd)
    finally:
        os.close(fd)
    mtime, ctime = st.st_mtime_ns, st.st_ctime_ns
    if len(data) != st.st_size or (st.st_size, mtime, ctime) != (size, mtime_ns, ctime_ns):
        raise changed_while_reading(path)
    key = (
        None
        if max(mtime, ctime) >= started - RACY_NS
        else (st.st_dev, st.st_ino, size, mtime, ctime)
    )
    return WholeFile(digest_bytes(data), data, key)
