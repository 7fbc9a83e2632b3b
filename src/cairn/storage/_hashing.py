"""Hashing local files and streams: the one loop every layer uses."""

from __future__ import annotations

import os
from typing import BinaryIO

from cairn.core import Advance, Digest, digest_from_hasher, new_hasher, transfer

CHUNK = 1 << 20  # bytes per read wherever content is hashed, copied or streamed


def hash_stream(f: BinaryIO, advance: Advance | None = None) -> tuple[Digest, int]:
    """The digest and size of what is left to read in ``f`` (``advance`` gets each chunk's
    size as it is hashed)."""
    hasher = new_hasher()
    size = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while n := f.readinto(buf):  # type: ignore[attr-defined]
        hasher.update(view[:n])
        size += n
        if advance is not None:
            advance(n)
    return digest_from_hasher(hasher), size


def hash_file(path: str) -> tuple[Digest, int]:
    """The digest and size of a local file, read in chunks."""
    with (
        open(path, "rb") as f,
        transfer("hashing", os.fstat(f.fileno()).st_size, path) as advance,
    ):
        return hash_stream(f, advance)
