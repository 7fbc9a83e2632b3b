"""A staging worker process: the worker's side of ``_stage_pool.StagePool`` (issue 13, item 3).

Started as ``python -S -P -c "from cairn.sdk._stage_worker import main; main()" ROOT LIMIT
DURABLE``: no ``site`` (the worker needs the standard library and this cairn, which
``PYTHONPATH`` names), not the caller's working directory on ``sys.path``, no ``runpy``, and this module imports only what a worker uses: ``os``, ``marshal``, threads, the
reader (``_whole.read_whole``) and the blob store. Not ``subprocess``, ``select``, ``weakref``
(the parent's side) nor ``pickle`` (loaded only to send an error): a worker starts while the
caller walks, and what it imports is time it does not read (``tests/test_imports.py`` checks).

The wire, both ways, is one owner's: an 8-byte little-endian length, then a ``marshal`` of the
message (tuples, lists, text, bytes, ints and None; same interpreter at both ends). Requests:
``("read", started_ns, [(directory, name, size, mtime_ns, ctime_ns), ...])`` and ``("flush",)``;
answers: ``("ok", [(digest, size, stat key or None), ...])``, ``("flushed", None)`` and
``("error", pickled exception)``, in the order asked.
"""

from __future__ import annotations

import marshal
import sys
import threading
from queue import SimpleQueue

from cairn._lazy import TYPE_CHECKING
from cairn.sdk._whole import Directories, FileDone, read_whole, write_early

if TYPE_CHECKING:
    from typing import Any, BinaryIO

    from cairn.storage import LocalBlobStore

FLUSH_BYTES = 32 << 20  # a worker writes its buffer when it holds this many bytes
FLUSH_COUNT = 20_000  # or this many blobs
HEADER_SIZE = 8


def frame(message: Any) -> bytes:
    """``message`` as sent on the wire (its length, then its marshal)."""
    data = marshal.dumps(message)
    return len(data).to_bytes(HEADER_SIZE, "little") + data


def length_of(header: bytes | bytearray, start: int = 0) -> int:
    """The length a message's header at ``start`` announces."""
    return int.from_bytes(header[start : start + HEADER_SIZE], "little")


def decode(data: bytes | bytearray) -> Any:
    return marshal.loads(data)


def error_of(pickled: bytes) -> BaseException:
    """The exception an ``("error", ...)`` answer carries."""
    import pickle  # the parent's side: loaded there already

    error: BaseException = pickle.loads(pickled)
    return error


def _receive(src: BinaryIO) -> Any:
    """The next message from ``src``, or None at its end."""
    head = src.read(HEADER_SIZE)
    if len(head) < HEADER_SIZE:
        return None
    length = length_of(head)
    data = src.read(length)
    if len(data) < length:
        return None
    return decode(data)


def _error(exc: Exception) -> bytes:
    """``exc`` pickled for the parent to raise; one that does not travel becomes a CommError."""
    import pickle  # only when something failed: a worker's start does not pay for it

    try:
        data = pickle.dumps(exc)
        pickle.loads(data)
    except Exception:  # noqa: BLE001 - any exception that does not travel becomes a CommError
        from cairn.errors import CommError

        data = pickle.dumps(CommError(f"a staging worker failed: {type(exc).__name__}: {exc}"))
    return data


def serve(root: str, small_limit: int, durable: bool) -> None:
    """Read, hash and store the files of each request from stdin; answer on stdout."""
    from cairn.storage import LocalBlobStore

    store = LocalBlobStore(root, small_limit=small_limit, durable=durable)
    inbox: SimpleQueue[Any] = SimpleQueue()

    def take_requests() -> None:
        # Reading ahead on a thread: the parent's writes never wait for this worker's answers.
        while (message := _receive(sys.stdin.buffer)) is not None:
            inbox.put(message)
        inbox.put(None)

    threading.Thread(target=take_requests, daemon=True).start()
    out = sys.stdout.buffer
    writer = _WriteBehind(store)
    buffer: list[tuple[str, bytes]] = []
    size = 0
    while (message := inbox.get()) is not None:  # None: the parent is done, or gone
        try:
            if message[0] == "read":
                _, started, chunk = message
                done: list[FileDone] = []
                with Directories() as dirs:
                    for directory, name, file_size, mtime, ctime in chunk:
                        digest, data, key = read_whole(
                            dirs, directory, name, file_size, mtime, ctime, started
                        )
                        buffer.append((digest, data))
                        size += file_size
                        done.append((digest, file_size, key))
                full = size >= FLUSH_BYTES or len(buffer) >= FLUSH_COUNT
                if full or (write_early(len(buffer), size) and writer.idle()):
                    writer.write(buffer)
                    buffer, size = [], 0
                reply: tuple[str, object] = ("ok", done)
            else:  # "flush"
                if buffer:
                    writer.write(buffer)
                    buffer, size = [], 0
                writer.wait()
                reply = ("flushed", None)
        except Exception as exc:  # noqa: BLE001 - every error is the parent's to raise
            buffer, size = [], 0
            reply = ("error", _error(exc))
        try:
            out.write(frame(reply))
            out.flush()
        except BrokenPipeError:
            return
    try:
        writer.wait()
    finally:
        store.close()


class _WriteBehind:
    """A worker's full buffers written on a thread while it reads on (one write at a time, so
    at most two buffers are held: the one written and the one filling). Writing files and
    their fsyncs release the GIL: a set of large files is read while the last batch is made
    durable, as the calling process does with its own buffer."""

    def __init__(self, store: LocalBlobStore) -> None:
        self._store = store
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def write(self, blobs: list[tuple[str, bytes]]) -> None:
        """Start writing ``blobs`` (after the write before it ended)."""
        self.wait()

        def run() -> None:
            try:
                self._store.put_many(blobs)
            except BaseException as exc:  # noqa: BLE001 - raised by the next wait()
                self._error = exc

        self._thread = threading.Thread(target=run, name="cairn-stage-write", daemon=True)
        self._thread.start()

    def idle(self) -> bool:
        """No write under way (the last one ended)."""
        return self._thread is None or not self._thread.is_alive()

    def wait(self) -> None:
        """The write under way ended; its error, if any, raised here."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def main() -> None:
    """The worker's entry point (``sys.argv``: the store's blob root, its small limit, durable)."""
    # Started in a process group of its own: Ctrl-C in a terminal reaches the parent, which
    # closes our input (we end).
    root, small_limit, durable = sys.argv[-3:]
    serve(root, int(small_limit), durable == "1")
