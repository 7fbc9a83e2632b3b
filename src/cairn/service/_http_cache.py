"""The download cache of a remote store: its layout, its verified reads and its cleanup.

``<cache_dir>/blobs/sha256/ab/<rest of hex>`` (``cairn.core.blob_path_parts``, the layout every
store shares): one plain file per blob, written under ``blobs/tmp/<random>.partial`` and renamed
into place only once verified; a hit refreshes the file's mtime, so ``cleanup`` (``cairn cache
cleanup``) removes the least recently used first. Removing a cached blob is always safe: it is
fetched again when needed, and a process already reading it keeps its open file. Whatever is read
out of the cache is verified again on the way (a damaged entry is dropped, never handed on).
"""

from __future__ import annotations

import itertools
import os
import uuid
from dataclasses import dataclass
from typing import Any

from cairn.core import (
    BLOB_ROOT,
    blob_path_parts,
    digest_bytes,
    digest_from_hasher,
    new_hasher,
    transfer,
)
from cairn.errors import DigestMismatchError, ValidationError
from cairn.storage import CHUNK

_O_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


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


class DownloadCache:
    """Verified blobs of a remote store under ``<cache_dir>/blobs`` (see the module)."""

    def __init__(self, cache_dir: str) -> None:
        self.cache_dir = cache_dir
        self.root = os.path.join(os.path.abspath(cache_dir), "blobs")
        self.tmp = os.path.join(self.root, "tmp")
        self._dirs: set[str] = set()  # made already: a mkdir that fails costs as much as one
        self._token = uuid.uuid4().hex[:16]  # names of partial files: this one's, then a count
        self._serial = itertools.count()

    def _makedirs(self, path: str) -> None:
        if path not in self._dirs:
            os.makedirs(path, exist_ok=True)
            self._dirs.add(path)

    def path_of(self, digest: str) -> str:
        return os.path.join(self.root, *blob_path_parts(digest))

    def lookup(self, digest: str) -> str | None:
        """The cached file of ``digest`` (its mtime refreshed), or None."""
        path = self.path_of(digest)
        try:
            os.utime(path)  # least recently used goes first when the cache is trimmed
        except FileNotFoundError:
            return None
        return path

    def partial(self) -> str:
        """A new name in ``tmp/`` to write a blob under until it is verified."""
        self._makedirs(self.tmp)
        return os.path.join(self.tmp, f"{self._token}-{os.getpid()}-{next(self._serial)}.partial")

    def install(self, tmp: str, digest: str) -> str:
        """Move ``tmp``, verified by the caller as ``digest``, into the cache."""
        path = self.path_of(digest)
        self._makedirs(os.path.dirname(path))
        os.replace(tmp, path)
        return path

    def add(self, digest: str, data: bytes) -> None:
        """Cache ``data``, verified by the caller as ``digest`` (system calls alone: a
        download of many small files adds one per file)."""
        tmp = self.partial()
        fd = os.open(tmp, _O_NEW, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        try:
            self.install(tmp, digest)
        except BaseException:
            drop(tmp)
            raise

    def read(self, path: str, digest: str) -> bytes:
        """The content of the cached file ``path``, verified (a damaged file is removed)."""
        with open(path, "rb") as f:
            data = f.read()
        if digest_bytes(data) != digest:
            drop(path)
            raise DigestMismatchError(
                f"cached blob {digest} at {path} is damaged (digest mismatch)"
            )
        return data

    def copy_out(self, path: str, dest: str, digest: str) -> None:
        """Copy the cached file ``path`` to ``dest``, verified while it is copied; on a mismatch
        ``dest`` is removed and ``DigestMismatchError`` raised (the caller drops the entry)."""
        hasher = new_hasher()
        with (
            open(path, "rb") as fin,
            open(dest, "wb") as fout,
            transfer("copying", os.fstat(fin.fileno()).st_size, None) as advance,
        ):
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            while n := fin.readinto(buf):
                hasher.update(view[:n])
                fout.write(view[:n])
                advance(n)
        if digest_from_hasher(hasher) != digest:
            os.unlink(dest)
            raise DigestMismatchError(
                f"cached blob {digest} at {path} is damaged (digest mismatch)"
            )

    # -- cleanup (``cairn cache cleanup``) -------------------------------------------------------

    def cleanup(self, target_size: int, *, remove_temp: bool = False) -> CacheCleanupReport:
        """Remove cached blobs, least recently used first, until the cache holds at most
        ``target_size`` bytes. With ``remove_temp`` also remove partial files of downloads (not
        while downloads are running)."""
        if target_size < 0:
            raise ValidationError(f"the target size must be zero or more, got {target_size}")
        files = _scan(os.path.join(self.root, BLOB_ROOT))
        total = sum(size for _, size, _ in files)
        removed = removed_bytes = gone = 0
        files.sort()  # oldest mtime first: the least recently used
        for _, size, path in files:
            if total <= target_size:
                break
            if drop(path):
                removed += 1
                removed_bytes += size
            else:
                gone += 1  # another process removed it first
            total -= size
        temp_removed = temp_bytes = 0
        if remove_temp:
            try:
                temps = list(os.scandir(self.tmp))
            except FileNotFoundError:
                temps = []
            for entry in temps:
                try:
                    size = entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue
                if entry.is_file(follow_symlinks=False) and drop(entry.path):
                    temp_removed += 1
                    temp_bytes += size
        return CacheCleanupReport(
            cache_dir=self.cache_dir,
            target_bytes=target_size,
            removed_files=removed,
            removed_bytes=removed_bytes,
            remaining_files=len(files) - removed - gone,
            remaining_bytes=total,
            temp_files_removed=temp_removed,
            temp_bytes_removed=temp_bytes,
        )


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


def drop(path: str) -> bool:
    """Remove a file; False if it was gone already."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
