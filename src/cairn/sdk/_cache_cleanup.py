"""Trimming the download cache (``cairn cache cleanup``), least recently used first.

The cache layout is fixed in docs/design.md ("Download cache"): one plain file per blob under
``$CAIRN_CACHE_DIR/blobs/sha256/ab/<rest of hex>``, whose mtime is refreshed on every hit, and
partial files in ``$CAIRN_CACHE_DIR/blobs/tmp/``. Removing a cached blob is always safe: it is
fetched again when needed, and a process already reading it keeps its open file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from cairn.core import BLOB_ROOT
from cairn.errors import ValidationError
from cairn.sdk._settings import Settings


@dataclass(frozen=True, slots=True)
class CacheCleanupReport:
    cache_dir: str
    target_bytes: int
    removed_files: int
    removed_bytes: int
    remaining_files: int
    remaining_bytes: int
    temp_files_removed: int = 0
    temp_bytes_removed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "cache_dir": self.cache_dir,
            "target_bytes": self.target_bytes,
            "removed_files": self.removed_files,
            "removed_bytes": self.removed_bytes,
            "remaining_files": self.remaining_files,
            "remaining_bytes": self.remaining_bytes,
            "temp_files_removed": self.temp_files_removed,
            "temp_bytes_removed": self.temp_bytes_removed,
        }


def _scan(directory: str) -> list[tuple[float, int, str]]:
    """(mtime, size, path) of the files directly in the subdirectories of ``directory``."""
    out: list[tuple[float, int, str]] = []
    try:
        subdirs = list(os.scandir(directory))
    except FileNotFoundError:
        return out
    for sub in subdirs:
        if not sub.is_dir(follow_symlinks=False):
            continue
        try:
            files = list(os.scandir(sub.path))
        except FileNotFoundError:
            continue
        for f in files:
            try:
                if f.is_file(follow_symlinks=False):
                    st = f.stat(follow_symlinks=False)
                    out.append((st.st_mtime, st.st_size, f.path))
            except FileNotFoundError:
                continue  # removed by another process meanwhile
    return out


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def cleanup_cache(
    target_size: int, *, remove_temp: bool = False, cache_dir: str | None = None
) -> CacheCleanupReport:
    """Remove cached blobs, least recently used first, until the cache holds at most
    ``target_size`` bytes. With ``remove_temp`` also remove partial files of downloads (do not
    use it while downloads are running)."""
    if target_size < 0:
        raise ValidationError(f"the target size must be zero or more, got {target_size}")
    root = cache_dir or Settings.from_env().cache_dir
    blobs = os.path.join(root, "blobs")
    files = _scan(os.path.join(blobs, BLOB_ROOT))
    total = sum(size for _, size, _ in files)
    removed = removed_bytes = gone = 0
    files.sort()  # oldest mtime first: the least recently used
    for _, size, path in files:
        if total <= target_size:
            break
        if _unlink(path):
            removed += 1
            removed_bytes += size
        else:
            gone += 1  # another process removed it first
        total -= size
    temp_removed = temp_bytes = 0
    if remove_temp:
        try:
            temps = list(os.scandir(os.path.join(blobs, "tmp")))
        except FileNotFoundError:
            temps = []
        for entry in temps:
            try:
                size = entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue
            if entry.is_file(follow_symlinks=False) and _unlink(entry.path):
                temp_removed += 1
                temp_bytes += size
    return CacheCleanupReport(
        cache_dir=root,
        target_bytes=target_size,
        removed_files=removed,
        removed_bytes=removed_bytes,
        remaining_files=len(files) - removed - gone,
        remaining_bytes=total,
        temp_files_removed=temp_removed,
        temp_bytes_removed=temp_bytes,
    )
