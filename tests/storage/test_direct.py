"""Blob bytes written past the page cache (``O_DIRECT``, ``storage/_local_direct.py``): appends at
any offset keep the bytes before them, buffers of any size and count land back to back, a file's
length stays exactly its bytes, and a writer that cannot write directly leaves the file as it
was so the caller writes it the usual way."""

from __future__ import annotations

import os
import pathlib
import random

import pytest

from cairn.core import digest_bytes
from cairn.storage import LocalBlobStore
from cairn.storage._local_direct import ALIGN, BUFFER, DirectWriter


def _write(writer: DirectWriter, path: pathlib.Path, start: int, parts: list[bytes]) -> bool:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        return writer.write(fd, start, parts)
    finally:
        os.close(fd)


def test_appends_at_any_offset_land_back_to_back(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "pack"
    writer = DirectWriter()
    rnd = random.Random(7)
    expected = b""
    # Sizes around the block and the buffer: a part crossing the buffer's end, an empty part,
    # appends starting inside a block, one block exactly.
    batches = [
        [b"a" * 3000],
        [rnd.randbytes(ALIGN), b"", rnd.randbytes(1)],
        [rnd.randbytes(rnd.randrange(1, 130_000)) for _ in range(60)],
        [rnd.randbytes(BUFFER - 5), rnd.randbytes(ALIGN + 11)],
        [rnd.randbytes(17)],
    ]
    for parts in batches:
        if not _write(writer, path, len(expected), parts):
            pytest.skip("this file system does not take O_DIRECT writes")
        expected += b"".join(parts)
        assert path.read_bytes() == expected  # the bytes before the append are unchanged
    assert writer.usable


def test_a_writer_that_cannot_write_directly_changes_nothing(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "pack"
    path.write_bytes(b"kept" * 1000)
    writer = DirectWriter()
    writer.usable = False  # as after a file system answered EINVAL
    assert not _write(writer, path, 4000, [b"new" * 5000])
    assert path.read_bytes() == b"kept" * 1000


def test_blob_files_and_packs_of_any_size_read_back(tmp_path: pathlib.Path) -> None:
    store = LocalBlobStore(str(tmp_path / "blobs"))  # durable: written directly
    sizes = [1, 4095, 4097, 127 << 10, 128 << 10, (200 << 10) + 1, (5 << 20) + 3]
    items = []
    for i, size in enumerate(sizes):
        data = i.to_bytes(2, "big") + os.urandom(size)
        items.append((digest_bytes(data), data))
    store.put_many(items[:3])
    store.put_many(items[3:])
    for digest, data in items:
        assert store.get(digest) == data
    packs = tmp_path / "blobs" / "packs"
    small = sum(len(d) for _, d in items if len(d) < store.small_limit)
    assert sum(p.stat().st_size for p in packs.iterdir()) == small  # no padding


def test_a_streamed_file_reads_back_exactly(tmp_path: pathlib.Path) -> None:
    """A file over the pack limit streams into a blob file (``put_file``), several reads' worth
    with a ragged tail: its digest, size and bytes, exactly."""
    store = LocalBlobStore(str(tmp_path / "blobs"))
    data = random.Random(3).randbytes(2 * BUFFER + ALIGN + 5)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    info = store.put_file(str(src))
    assert (info.digest, info.size) == (digest_bytes(data), len(data))
    assert store.get(info.digest) == data
