"""POSIX file helpers the local store's blob files and pack files share, and its write errors."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
from collections.abc import Callable, Iterator, Sequence

from cairn.errors import CommError, UnavailableError

O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


BUSY_SECONDS = 60.0  # how long a writer waits for its turn (and SQLite for its lock) by default


@contextlib.contextmanager
def writer_turn(db_path: str, timeout: float = BUSY_SECONDS) -> Iterator[None]:
    """This process's turn among the writers of the SQLite file ``db_path``: ``flock(2)`` on
    ``<db_path>.writers.lock``, held around each write transaction (``BEGIN IMMEDIATE`` to its
    end; never around another's turn: two turns of one process on one file would wait forever).
    A writer waits at most ``timeout`` seconds (its file's busy timeout, as SQLite waited for
    its lock), then gets ``UnavailableError`` naming the process that holds the turn (one
    stopped by a signal or a debugger keeps every writer waiting): nothing is written.

    SQLite waits for its write lock by polling, each sleep longer than the last (up to 100 ms):
    eight processes storing their blobs at once handed the lock on up to 0.1 s after a commit,
    and with smaller batches one waited 0.74-0.85 s while the others took it in turns (issue
    13, design.md "Eight upserting processes: writers in turn"). The kernel queues ``flock``
    waiters instead and wakes the next one when the holder closes the file. SQLite's lock still
    guards the data: a writer that does not queue (an older cairn) only waits the old way, and
    a directory that cannot hold the file goes without. Each turn opens the file anew (a lock
    belongs to an open file: threads sharing one would hand it to each other), for reading
    only (``flock`` needs no more: another user's file will do)."""
    path = db_path + ".writers.lock"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | O_CLOEXEC, 0o644)
    except OSError:
        yield
        return
    with flock_within(
        path, fd, exclusive=True, timeout=timeout, refused=lambda: _turn_timeout(db_path, timeout)
    ):
        yield


@contextlib.contextmanager
def flock_within(
    path: str,
    fd: int,
    *,
    exclusive: bool,
    timeout: float,
    refused: Callable[[], BaseException],
    required: bool = False,
    keep_waiting: Callable[[], bool] | None = None,
) -> Iterator[int]:
    """``flock(2)`` (exclusive or shared) of ``fd``, the file at ``path`` just opened (this
    takes it over: closed at the end, which lets the lock go), held while the body runs; the
    body gets the descriptor that holds it. Waited for at most ``timeout`` seconds (another
    ``timeout`` each time ``keep_waiting()`` says so then), then ``refused()`` is raised and the
    body does not run. A file system without ``flock`` goes without the lock, or raises its
    ``OSError`` when ``required``.

    A free lock costs one call. A held one is waited for in the kernel's queue (which has no
    timeout) from a thread of its own. A blocked ``flock`` cannot be called off (only a signal
    handler of the process's own would end it), so a wait given up on stays in the queue until
    the holder lets go, then lets the lock go at once: it is the lock's pending wait, which the
    next wait for the same lock of this process takes up (its descriptor the one that holds the
    lock) instead of starting a thread and opening a file of its own. So a stopped holder costs
    a process at most one thread and one descriptor a lock however many waits give up, both
    back when the holder lets go (there were one of each per wait given up)."""
    owner = os.getpid()
    _HELD.add(fd)  # before the wait: a child forked meanwhile must not keep it either
    key = (path, exclusive)
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    wait: _Wait | None = None
    try:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            wait = _Wait.take_up(key)
            if wait is not None:  # an earlier wait of this process is in the queue already
                _release(fd, owner)
                fd = wait.fd
            else:
                wait = _Wait.start(fd, mode, key)
            if wait is not None and not wait.until(timeout, keep_waiting):
                raise refused() from None
        except OSError:
            if required:
                raise
            # a file system without flock (some network ones): SQLite's lock alone
        yield fd
    finally:
        if wait is None or not wait.given_up:  # else the wait closes it when it ends
            _release(fd, owner)


class _Wait:
    """A blocking ``flock`` in a thread of its own (the kernel's queue has no timeout), which
    the caller stops waiting for after a while: a wait given up on is the lock's pending wait
    (``take_up``) until its ``flock`` returns, and then releases the lock (closes the file)
    unless it was taken up meanwhile."""

    def __init__(self, fd: int, mode: int, key: tuple[str, bool]) -> None:
        self.fd = fd
        self.mode = mode
        self.key = key
        self.given_up = False
        self._done = threading.Event()

    @classmethod
    def start(cls, fd: int, mode: int, key: tuple[str, bool]) -> _Wait | None:
        """The wait for ``fd``'s lock, begun; None when no thread can start (an exiting
        interpreter's ``atexit``): then the lock was waited for here, with no bound."""
        wait = cls(fd, mode, key)
        try:
            threading.Thread(target=wait._run, name="cairn-flock-wait", daemon=True).start()
        except RuntimeError:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, mode)
            return None
        return wait

    @staticmethod
    def take_up(key: tuple[str, bool]) -> _Wait | None:
        """The pending wait for the lock ``key`` (given up on, still in the queue or holding
        the lock just now), now the caller's; None if there is none."""
        with _PENDING_LOCK:
            wait = _PENDING.pop(key, None)
            if wait is not None:
                wait.given_up = False
            return wait

    def _run(self) -> None:
        with contextlib.suppress(OSError):  # no flock after all: SQLite's lock alone
            fcntl.flock(self.fd, self.mode)
        with _PENDING_LOCK:
            self._done.set()
            if not self.given_up:
                return
            if _PENDING.get(self.key) is self:
                del _PENDING[self.key]
        _release(self.fd, os.getpid())

    def until(self, timeout: float, keep_waiting: Callable[[], bool] | None = None) -> bool:
        """Whether the lock was taken within ``timeout`` seconds (or more rounds of it while
        ``keep_waiting()``); if not, it is given up (and pending, unless the lock has a pending
        wait already)."""
        try:
            while not self._done.wait(timeout) and keep_waiting is not None and keep_waiting():
                pass
        finally:  # also when interrupted (Ctrl-C): the thread then lets the lock go
            with _PENDING_LOCK:
                self.given_up = not self._done.is_set()
                if self.given_up:
                    _PENDING.setdefault(self.key, self)
        return not self.given_up


def _release(fd: int, owner: int) -> None:
    _HELD.discard(fd)
    if os.getpid() == owner:  # a forked child closed its copy already (_leave_turns)
        os.close(fd)  # releases the lock


def flock_holder(path: str) -> str:
    """Who holds the ``flock`` of the file at ``path``, for an error: "process <pid>" (Linux's
    ``/proc/locks``), "another thread of this process", or "another process" where it cannot
    be known (another pid namespace, another system)."""
    pid = _holder(path)
    if pid == os.getpid():
        return "another thread of this process"
    return f"process {pid}" if pid else "another process"


def flock_holder_stopped(path: str) -> bool:
    """Whether the process holding the ``flock`` of the file at ``path`` is known to be stopped
    (Ctrl-Z, a debugger: state T or t in Linux's ``/proc/<pid>/stat``); False where it runs or
    cannot be known."""
    pid = _holder(path)
    if not pid or pid == os.getpid():
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]  # "pid (comm) S ...": comm may hold ")"
    except (OSError, IndexError):
        return False  # gone (the lock with it), or no /proc
    return state in (b"T", b"t")


def _turn_timeout(db_path: str, timeout: float) -> UnavailableError:
    err = UnavailableError(
        f"{db_path} is being written by {flock_holder(db_path + '.writers.lock')}, which has held the"
        f" writers' turn for more than {timeout:g} s: if it is stopped (Ctrl-Z, a debugger), let"
        " it go on or end it, then try again (nothing was written)"
    )
    err.public = "the server's store is busy (nothing was written); try again later"
    return err


def _holder(path: str) -> int | None:
    """The process holding the ``flock`` of the file at ``path``, as Linux's ``/proc/locks``
    says (no write in a turn needed to know it), or None. By the file's device and inode;
    by its inode alone where that is the one lock (an overlay file system shows another
    device than ``stat``)."""
    try:
        st = os.stat(path)
        exact = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        inode = f":{st.st_ino}"
        same_inode = []
        with open("/proc/locks") as f:
            for line in f:  # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF"; waiters "->"
                fields = line.split()
                if len(fields) > 5 and fields[1] == "FLOCK":
                    if fields[5] == exact:
                        return int(fields[4])
                    if fields[5].endswith(inode):
                        same_inode.append(int(fields[4]))
    except (OSError, ValueError):
        return None
    return same_inode[0] if len(same_inode) == 1 else None


# The lock files of the turns this process holds or waits for. A fork (multiprocessing, a data
# loader's workers) copies them into the child, and a lock belongs to the open file: the
# parent's close would not release it while the child lives, and every writer of the store
# would wait for the child to exit. The child closes its copies at once; the parent's turn is
# unchanged.
_HELD: set[int] = set()
# The waits given up on whose ``flock`` has not returned yet, a lock's at most (``_Wait``).
_PENDING: dict[tuple[str, bool], _Wait] = {}
_PENDING_LOCK = threading.Lock()


def _leave_turns() -> None:
    global _PENDING_LOCK
    for fd in list(_HELD):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()
    _PENDING.clear()  # their threads are not in the child
    _PENDING_LOCK = threading.Lock()  # another thread may have held it at the fork


os.register_at_fork(after_in_child=_leave_turns)


def touch(path: str) -> None:
    """Mark a blob file as stored now (see ``list``: gc's grace period counts from then)."""
    try:
        os.utime(path)
    except OSError:
        pass  # best effort: a store shared read-only, say


def preallocate(fd: int, size: int, start: int = 0) -> None:
    try:
        os.posix_fallocate(fd, start, size - start)
    except (AttributeError, OSError):
        pass  # not supported here: the write still works, only slower


def start_writeback(fd: int) -> None:
    """Have the kernel start writing the file's new bytes to disk now, not wait for the flush
    (on Linux, ``POSIX_FADV_DONTNEED`` starts writeback of dirty pages, and drops the clean ones:
    a blob just stored is rarely read back soon). The flush that follows then finds most of
    the bytes written while the writer went on with the next files."""
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except (AttributeError, OSError):
        pass  # not offered here: the flush writes everything, as it would anyway


def write_all(fd: int, data: memoryview) -> None:
    while data:
        n = os.write(fd, data)
        data = data[n:]


def pread_all(fd: int, length: int, offset: int) -> bytes:
    parts: list[bytes] = []
    while length > 0:
        chunk = os.pread(fd, length, offset)
        if not chunk:
            break
        parts.append(chunk)
        offset += len(chunk)
        length -= len(chunk)
    return b"".join(parts)


# Blobs near each other in a pack are read in one call: a log stores a directory's small files
# one after another, so a download reads them back in a few calls instead of one per blob.
_SPAN_GAP = 16 << 10  # bytes of other blobs read through rather than starting another call
_SPAN_MAX = 4 << 20


def pread_spans(fd: int, spots: Sequence[tuple[int, int]]) -> list[bytes]:
    """The bytes at each ``(offset, size)`` of ``spots`` (in that order) in file ``fd``; spots
    close together are read with one system call."""
    order = sorted(range(len(spots)), key=spots.__getitem__)
    out: list[bytes] = [b""] * len(spots)
    i = 0
    while i < len(order):
        begin = spots[order[i]][0]
        end = begin + spots[order[i]][1]
        j = i + 1
        while j < len(order):
            offset, size = spots[order[j]]
            if offset - end > _SPAN_GAP or offset + size - begin > _SPAN_MAX:
                break
            end = max(end, offset + size)
            j += 1
        span = pread_all(fd, end - begin, begin)
        for k in order[i:j]:
            offset, size = spots[k]
            out[k] = span[offset - begin : offset - begin + size]
        i = j
    return out


def pwritev_all(fd: int, buffers: Sequence[bytes | memoryview], offset: int) -> None:
    """Write ``buffers`` back to back at ``offset`` (one system call, no copy, when it can)."""
    n = os.pwritev(fd, buffers, offset)
    total = sum(len(b) for b in buffers)
    if n < total:  # a short write: the rest one piece at a time
        rest = memoryview(b"".join(buffers))[n:]
        offset += n
        while rest:
            n = os.pwrite(fd, rest, offset)
            rest = rest[n:]
            offset += n


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def store_error(root: str, what: str, exc: BaseException) -> CommError:
    """A write that failed, naming the store at ``root`` (and saying so when it is full); a
    server answers it with "the server's blob store" in the root's place and logs the root."""
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    full = (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "full" in text.lower()

    def said(store: str) -> str:
        if full:
            return (
                f"{what}: {store} is full ({text}); free space on its disk,"
                " or delete versions and run `cairn gc`"
            )
        return f"{what} in {store}: {text}"

    err = CommError(said(f"the blob store {root}"))
    err.public = said("the server's blob store")
    return err
