"""``benchmarks._common.disk_read_bytes``: what a timed run read from the disk (0 when its data
set was in the page cache, which the large file's runs print, ours and the floor's)."""

from __future__ import annotations

import os
import pathlib

import pytest
from benchmarks._common import disk_read_bytes


def _file_system(path: pathlib.Path) -> str:
    """The type of the file system ``path`` is on (the longest mount point above it)."""
    best, kind = "", ""
    with open("/proc/self/mounts") as f:
        for line in f:
            point, fs = line.split()[1:3]
            if str(path).startswith(point.rstrip("/") + "/") and len(point) > len(best):
                best, kind = point, fs
    return kind


def test_a_read_from_the_disk_counts_and_one_from_the_page_cache_does_not(
    tmp_path: pathlib.Path,
) -> None:
    if _file_system(tmp_path) in ("tmpfs", "ramfs", "overlay"):
        pytest.skip("the temporary directory is not on a disk")
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(4 << 20))
    with open(path, "rb") as f:
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)  # clean pages: dropped
        before = disk_read_bytes()
        f.read()
        cold = disk_read_bytes() - before
        f.seek(0)
        before = disk_read_bytes()
        f.read()
        warm = disk_read_bytes() - before
    assert cold >= 4 << 20
    assert warm < 1 << 20
