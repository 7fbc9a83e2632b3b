"""A BlobStore in a dict: for tests and for throwaway stores."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import BinaryIO

from cairn.core import digest_bytes
from cairn.errors import BlobNotFoundError, DigestMismatchError
from cairn.storage._base import BlobInfo, check_range, get_each, put_verified_file


class MemoryBlobStore:
    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._stored_at: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def read_only(self) -> bool:
        return False

    def put(self, digest: str, data: bytes) -> None:
        with self._lock:
            if digest not in self._blobs:
                self._blobs[digest] = bytes(data)
                self._stored_at[digest] = time.time()

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        for digest, data in items:
            self.put(digest, data)

    def put_file(self, path: str, *, link: bool = False) -> BlobInfo:
        with open(path, "rb") as f:
            data = f.read()
        digest = digest_bytes(data)
        self.put(digest, data)
        return BlobInfo(digest, len(data))

    def get(self, digest: str) -> bytes:
        try:
            data = self._blobs[digest]
        except KeyError:
            raise BlobNotFoundError(f"blob {digest} is not in the store") from None
        if digest_bytes(data) != digest:
            raise DigestMismatchError(f"blob {digest} is damaged: its content has another digest")
        return data

    def open(self, digest: str) -> BinaryIO:
        return io.BytesIO(self.get(digest))

    def get_range(self, digest: str, start: int, length: int) -> bytes:
        check_range(start, length)
        try:
            data = self._blobs[digest]
        except KeyError:
            raise BlobNotFoundError(f"blob {digest} is not in the store") from None
        return data[start : start + length]

    def copy_to(self, digest: str, dest: str) -> None:
        data = self.get(digest)
        with open(dest, "wb") as f:
            f.write(data)

    def has_many(self, digests: Iterable[str]) -> set[str]:
        return {d for d in digests if d in self._blobs}

    def size(self, digest: str) -> int | None:
        data = self._blobs.get(digest)
        return None if data is None else len(data)

    def small_many(self, digests: Sequence[str]) -> dict[str, bytes]:
        return {}

    def get_many(self, digests: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        return get_each(self, digests)

    def indexed_sizes(self, digests: Sequence[str]) -> dict[str, int] | None:
        return None

    def local_path(self, digest: str) -> str | None:
        return None

    def presigned_url(self, digest: str, start: int = 0, length: int | None = None) -> str | None:
        return None

    def presigned_gets(self, digests: Sequence[str]) -> dict[str, tuple[str, int]]:
        return {}

    def remove_stale_temp(self, older_than: float) -> int:
        return 0

    def take_file(self, path: str, digest: str) -> BlobInfo:
        return put_verified_file(self, path, digest)

    def delete_many(self, digests: Iterable[str]) -> int:
        with self._lock:
            return sum(self._blobs.pop(d, None) is not None for d in set(digests))

    def list(self) -> Iterator[BlobInfo]:
        return iter(
            [BlobInfo(d, len(b), self._stored_at.get(d)) for d, b in list(self._blobs.items())]
        )

    def close(self) -> None:
        pass

    def corrupt(self, digest: str, data: bytes) -> None:
        """Replace a blob's content behind the store's back (for tests of verification)."""
        self._blobs[digest] = data
