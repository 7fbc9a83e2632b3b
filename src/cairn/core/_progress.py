"""Byte-level progress hooks: the loops that move a blob's bytes report here; a listener draws.

The loops that hash, store, upload and download one large blob wrap their work in
``transfer(phase, total, name)`` and call the ``advance(nbytes)`` it yields once per chunk. While
no listener is installed (the default, and always on a server) that costs one global read per
blob and one no-op call per chunk. The SDK installs a listener (``cairn.sdk._progress``) for the
duration of a long operation, when there is somewhere to show progress.

Listeners are process-wide rather than per-thread: the loops run in worker threads (parallel
hashing, uploads and downloads) that did not install anything. The last installed listener wins.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

Advance = Callable[[int], None]


class TransferListener(Protocol):
    """What a listener implements: one call per transfer begun and ended, one per chunk."""

    def transfer_begun(self, phase: str, total: int | None, name: str | None) -> Advance: ...

    def transfer_ended(self, advance: Advance) -> None: ...


_listeners: list[TransferListener] = []
_lock = threading.Lock()


def _ignore(nbytes: int) -> None:
    pass


@contextmanager
def transfer(phase: str, total: int | None, name: str | None = None) -> Iterator[Advance]:
    """Report the bytes of one blob's ``phase`` ("hashing", "uploading", ...) as they move.

    ``total`` is the expected byte count (None when unknown); ``name`` the file or blob it is
    about. The yielded function takes the bytes done since its last call."""
    listener = _listeners[-1] if _listeners else None
    if listener is None:
        yield _ignore
        return
    advance = listener.transfer_begun(phase, total, name)
    try:
        yield advance
    finally:
        listener.transfer_ended(advance)


@contextmanager
def listening(listener: TransferListener) -> Iterator[None]:
    """Send the reports of every transfer begun in this process meanwhile to ``listener``."""
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            # Not necessarily the last: two threads may each run a long operation.
            for i in range(len(_listeners) - 1, -1, -1):
                if _listeners[i] is listener:
                    del _listeners[i]
                    break


def counting_reads(
    read: Callable[[int, int], bytes], advance: Advance
) -> Callable[[int, int], bytes]:
    """``read(offset, n)`` that reports the bytes it returns (an upload reads as it sends)."""

    def counted(offset: int, n: int) -> bytes:
        data = read(offset, n)
        advance(len(data))
        return data

    return counted
