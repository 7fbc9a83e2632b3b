"""Wrappers that add one behaviour to any BlobStore (wrap, don't flag)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import BinaryIO

from cairn.errors import UsageError
from cairn.storage._base import BlobInfo, BlobStore


class ReadOnlyBlobStore:
    """Lets reads through and refuses every write with a clear error."""

    def __init__(self, inner: BlobStore) -> None:
        self._inner = inner

    @property
    def read_only(self) -> bool:
        return True

    def _refuse(self) -> UsageError:
        return UsageError("this blob store is read-only; open it without read_only to change it")

    def put(self, digest: str, data: bytes) -> None:
        raise self._refuse()

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        raise self._refuse()

    def put_file(self, path: str, *, link: bool = False) -> BlobInfo:
        raise self._refuse()

    def take_file(self, path: str, digest: str) -> BlobInfo:
        raise self._refuse()

    def delete_many(self, digests: Iterable[str]) -> int:
        raise self._refuse()

    def get(self, digest: str) -> bytes:
        return self._inner.get(digest)

    def open(self, digest: str) -> BinaryIO:
        return self._inner.open(digest)

    def get_range(self, digest: str, start: int, length: int) -> bytes:
        return self._inner.get_range(digest, start, length)

    def copy_to(self, digest: str, dest: str) -> None:
        self._inner.copy_to(digest, dest)

    def has_many(self, digests: Iterable[str]) -> set[str]:
        return self._inner.has_many(digests)

    def size(self, digest: str) -> int | None:
        return self._inner.size(digest)

    def list(self) -> Iterator[BlobInfo]:
        return self._inner.list()

    def small_many(self, digests: Sequence[str]) -> dict[str, bytes]:
        return self._inner.small_many(digests)

    def get_many(self, digests: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        return self._inner.get_many(digests)

    def indexed_sizes(self, digests: Sequence[str]) -> dict[str, int] | None:
        return self._inner.indexed_sizes(digests)

    def local_path(self, digest: str) -> str | None:
        return self._inner.local_path(digest)

    def presigned_url(self, digest: str, start: int = 0, length: int | None = None) -> str | None:
        return self._inner.presigned_url(digest, start, length)

    def presigned_gets(self, digests: Sequence[str]) -> dict[str, tuple[str, int]]:
        return self._inner.presigned_gets(digests)

    def remove_stale_temp(self, older_than: float) -> int:
        return 0  # a read-only store is not cleaned

    def close(self) -> None:
        self._inner.close()
