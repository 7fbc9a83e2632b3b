"""Hashing local files and streams: the one loop every layer uses."""

from __future__ import annotations

import os

from cairn._lazy import TYPE_CHECKING
from cairn.core import digest_from_hasher, new_hasher

if TYPE_CHECKING:
    from typing import BinaryIO

    from cairn.core import Advance, Digest

CHUNK = 1 << 20  # bytes per read wherever content is hashed, copied or streamed


def hash_stream(f: BinaryIO | int, advance: Advance | None = None) -> tuple[Digest, int]:
    """The digest and size of what is left to read in ``f``, or of the whole file open as the
    descriptor ``f`` (read by offset from its start, its position untouched: another thread may
    read it at once). ``advance`` gets each chunk's size as it is hashed (it may raise, to stop
    at the next chunk)."""
    hasher = new_hasher()
    size = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while True:
        n = os.preadv(f, [buf], size) if isinstance(f, int) else f.readinto(buf)  # type: ignore[attr-defined]
        if not n:
            return digest_from_hasher(hasher), size
        hasher.update(view[:n])
        size += n
        if advance is not None:
            advance(n)


def hash_file(path: str) -> tuple[Digest, int]:
    """The digest and size of a local file, read in chunks."""
    from cairn.core import transfer  # progress (and typing): not loaded by a staging worker

    with (
        open(path, "rb") as f,
        transfer("hashing", os.fstat(f.fileno()).st_size, path) as advance,
    ):
        return hash_stream(f, advance)
