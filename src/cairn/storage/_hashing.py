"""Hashing local files and streams: the one loop every layer uses."""

from __future__ import annotations

from typing import BinaryIO

from cairn.core import digest_from_hasher, new_hasher

CHUNK = 1 << 20


def hash_stream(f: BinaryIO) -> tuple[str, int]:
    """The digest and size of what is left to read in ``f``."""
    hasher = new_hasher()
    size = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while n := f.readinto(buf):  # type: ignore[attr-defined]
        hasher.update(view[:n])
        size += n
    return digest_from_hasher(hasher), size


def hash_file(path: str) -> tuple[str, int]:
    """The digest and size of a local file, read in chunks."""
    with open(path, "rb") as f:
        return hash_stream(f)
