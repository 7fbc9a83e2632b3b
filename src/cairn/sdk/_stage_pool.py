"""Worker processes that read, hash and store new files for the embedded store (issue 13, item 3).

A first log of many small files is per-file work (open, read, fstat, close, SHA-256, a few
Python objects) that holds the GIL, so threads do not use a second core. ``StagePool`` starts
``CAIRN_STAGE_WORKERS`` processes (``_stage_worker.py``: a new interpreter that imports only the
worker's side and the blob store, never the caller's ``__main__``, with no inherited threads,
locks or SQLite connections) when a job is big enough to repay their start. The parent
walks, sends the workers chunks of file names and reads a share of the chunks itself once the
walk is over (so one process fewer is started: on 2 cores, one worker; ``_read_ahead.py``
says which chunks); a worker reads each file whole
(``read_whole``, the one reader the calling process uses too), hashes it, keeps the blob in its
own buffer and writes full buffers into the store itself (``LocalBlobStore.put_many``: packs
under SQLite's write lock, larger blobs as files with their durability batched), so content
never crosses a pipe; it answers with (digest, size, stat key) per file. Each worker answers
in the order it was sent chunks, so the parent takes the answers in the order of the files.
``flush`` makes every worker write its buffer durably (before the commit that refers to the
blobs); ``close`` ends them.

Failures: a file that changed while read, a full disk, any error in a worker, is raised in the
parent as the same exception. A worker that dies (killed) is a ``CommError``: nothing is
committed, and blobs it stored are unreferenced (gc sweeps them). A parent that dies closes the
workers' input: they stop at once, dropping what they had not written (nothing refers to it).
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import weakref
from collections import deque
from typing import Any

from cairn.errors import CommError
from cairn.sdk._stage_worker import HEADER_SIZE, decode, error_of, frame, length_of
from cairn.sdk._whole import FileDone, FileJob

# Chunks a worker holds unanswered: enough that it never waits while the caller reads a chunk
# or works on answers (with 2, s1's worker waited 0.03-0.24 s of its ~0.4 s under load; with 4,
# 0.00-0.01 s), few enough that at the end the caller does not wait on more than it could read.
AHEAD = 4
# The worker's command: no ``site`` (what it imports is on ``PYTHONPATH``), no ``runpy``, and not
# the caller's working directory first on ``sys.path`` (``-P``: a ``queue.py`` there would shadow
# the standard library's).
WORKER = ("-S", "-P", "-c", "from cairn.sdk._stage_worker import main; main()")


class StagePool:
    """``count`` worker processes storing into the embedded store's blobs at ``root``."""

    def __init__(self, count: int, root: str, small_limit: int, durable: bool) -> None:
        import cairn

        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(cairn.__file__)))
        env = dict(os.environ)
        # The workers import this very cairn, wherever the caller found it.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_parent, env.get("PYTHONPATH", "")) if p
        )
        command = [sys.executable, *WORKER, root, str(small_limit), "1" if durable else "0"]
        self._procs: list[subprocess.Popen[bytes]] = []
        # Per worker: bytes read from its pipe not yet a whole answer, answers read not yet
        # taken, requests sent not yet answered (its backlog), and whether its pipe ended.
        self._inbound: list[bytearray] = []
        self._replies: list[deque[Any]] = []
        self._asked: list[int] = []
        self._ended: list[bool] = []
        # Per worker: flushes asked and answered, and whether one was asked since its last chunk.
        self._flushes: list[int] = []
        self._flushed: list[int] = []
        self._flush_asked: list[bool] = []
        self._finalizer = weakref.finalize(self, _kill_all, self._procs)
        try:
            for _ in range(count):
                # A process group of its own: Ctrl-C in a terminal reaches the caller alone,
                # which closes the workers' input (they end); they do not handle signals.
                self._procs.append(
                    subprocess.Popen(
                        command,
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        env=env,
                        process_group=0,
                    )
                )
                self._inbound.append(bytearray())
                self._replies.append(deque())
                self._asked.append(0)
                self._ended.append(False)
                self._flushes.append(0)
                self._flushed.append(0)
                self._flush_asked.append(False)
        except BaseException:
            self.close(kill=True)
            raise

    @property
    def size(self) -> int:
        return len(self._procs)

    def submit(self, worker: int, chunk: list[FileJob], started: int) -> None:
        """Send worker ``worker`` a chunk to read (its answer comes after those sent before)."""
        self._ask(worker, ("read", started, chunk))
        self._flush_asked[worker] = False  # a flush asked before does not cover this chunk

    def answer(self, worker: int) -> list[FileDone]:
        """The (digest, size, stat key) of each file of the oldest chunk sent to ``worker``."""
        done: list[FileDone] = self._answer(worker)
        return done

    def backlog(self, worker: int) -> int:
        """Requests sent to ``worker`` that it has not answered yet (as of the last ``poll``)."""
        return self._asked[worker] - len(self._replies[worker])

    def answered(self, worker: int) -> bool:
        """Whether ``worker``'s oldest unanswered request has its answer in (as of the last
        ``poll``)."""
        return bool(self._replies[worker])

    def poll(self) -> None:
        """Take in every answer the workers have written so far, without waiting: the caller
        sees how far each has got, and a worker never waits for its pipe to be read."""
        fds = {
            proc.stdout.fileno(): worker
            for worker, proc in enumerate(self._procs)
            if proc.stdout is not None and not self._ended[worker]
        }
        while fds:
            ready, _, _ = select.select(list(fds), [], [], 0)
            if not ready:
                return
            for fd in ready:
                if not self._pump(fds[fd]):
                    del fds[fd]

    def flush_soon(self) -> None:
        """Ask every worker to write its buffered blobs durably once it has read the chunks it
        was sent, without waiting (``flush`` waits): the caller goes on meanwhile, and the
        workers' last writes and fsyncs overlap its own work (the last chunk of a job sent)."""
        for worker in range(len(self._procs)):
            if not self._flush_asked[worker]:
                self._ask(worker, ("flush",))
                self._flushes[worker] += 1
                self._flush_asked[worker] = True

    def flush(self) -> None:
        """Every worker's buffered blobs written to the store, durably (called once the answers
        of the chunks sent are taken)."""
        self.flush_soon()
        for worker in range(len(self._procs)):
            while self._flushed[worker] < self._flushes[worker]:
                if self._replies[worker]:
                    self._answer(worker)  # a worker's error is raised here
                elif self._ended[worker] or not self._pump(worker):
                    raise self._died(worker)

    def close(self, *, kill: bool = False) -> None:
        """End the workers (their input closes; ``kill``: at once, e.g. after an error)."""
        self._finalizer.detach()
        _kill_all(self._procs, kill=kill)

    def _ask(self, worker: int, message: object) -> None:
        proc = self._procs[worker]
        assert proc.stdin is not None
        try:
            proc.stdin.write(frame(message))
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._died(worker) from None
        self._asked[worker] += 1

    def _answer(self, worker: int) -> Any:
        replies = self._replies[worker]
        while not replies:
            if self._ended[worker] or not self._pump(worker):
                raise self._died(worker)
        reply = replies.popleft()
        self._asked[worker] -= 1
        if reply[0] == "error":
            raise error_of(reply[1])
        return reply[1]

    def _pump(self, worker: int) -> bool:
        """Read what ``worker`` wrote (waiting for some), its whole answers queued; False once
        its pipe has ended. The pipe is read with ``os.read``, never through a Python buffer,
        so ``select`` sees every byte not yet taken."""
        proc = self._procs[worker]
        assert proc.stdout is not None
        data = os.read(proc.stdout.fileno(), 1 << 20)
        if not data:
            self._ended[worker] = True
            return False
        inbound = self._inbound[worker]
        inbound += data
        start = 0
        while len(inbound) - start >= HEADER_SIZE:
            end = start + HEADER_SIZE + length_of(inbound, start)
            if len(inbound) < end:
                break
            reply = decode(inbound[start + HEADER_SIZE : end])
            if reply[0] == "flushed":  # counted, not queued: the replies are the chunks' answers
                self._flushed[worker] += 1
                self._asked[worker] -= 1
            else:
                self._replies[worker].append(reply)
            start = end
        del inbound[:start]
        return True

    def _died(self, worker: int) -> CommError:
        proc = self._procs[worker]
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        self.close(kill=True)
        return CommError(
            f"a staging worker process ended unexpectedly (exit status {code}); nothing was"
            " committed. Log the artifact again (CAIRN_STAGE_WORKERS=1 stages in this process)"
        )


def _kill_all(procs: list[subprocess.Popen[bytes]], *, kill: bool = True) -> None:
    for proc in procs:
        if kill and proc.poll() is None:
            proc.kill()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass  # a broken pipe to a dead worker
    for proc in procs:
        try:
            _wait_exit(proc, 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """``proc``'s exit status, waiting at most ``timeout`` seconds (``TimeoutExpired``). Woken
    by the kernel the moment the process ends (a pidfd): ``Popen.wait(timeout=)`` polls with
    sleeps of up to 50 ms, and this wait ends every log that started a worker."""
    if proc.returncode is not None:
        return proc.returncode  # reaped already: its pid may be another process's now
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # no pidfd (not Linux 5.3+), or already reaped
        return proc.wait(timeout=timeout)
    try:
        ended, _, _ = select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    if not ended:
        raise subprocess.TimeoutExpired(proc.args, timeout)
    return proc.wait()
