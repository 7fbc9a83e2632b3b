"""CountingService: a Service that counts the blob bytes it hands out (for tests and benchmarks
that assert how much a reader fetched)."""

from __future__ import annotations

import os
import threading
from typing import Any


class CountingService:
    """Forwards every call to ``inner`` (any Service) and counts blob reads: whole blobs
    (``read_blob``), ranges (``read_blob_range``) and downloads (``download_blob``)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.blob_reads = 0
            self.blob_bytes = 0
            self.range_reads = 0
            self.range_bytes = 0
            self.downloads = 0
            self.download_bytes = 0

    @property
    def bytes_read(self) -> int:
        """Every blob byte handed out, whatever the call."""
        return self.blob_bytes + self.range_bytes + self.download_bytes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def read_blob(self, digest: str) -> bytes:
        data: bytes = self._inner.read_blob(digest)
        with self._lock:
            self.blob_reads += 1
            self.blob_bytes += len(data)
        return data

    def read_blob_range(self, digest: str, start: int, length: int) -> bytes:
        data: bytes = self._inner.read_blob_range(digest, start, length)
        with self._lock:
            self.range_reads += 1
            self.range_bytes += len(data)
        return data

    def download_blob(self, digest: str, dest: str) -> None:
        self._inner.download_blob(digest, dest)
        with self._lock:
            self.downloads += 1
            self.download_bytes += os.path.getsize(dest)
