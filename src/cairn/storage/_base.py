"""The BlobStore protocol: content-addressed bytes, written once, never modified."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

from cairn.errors import DigestMismatchError, ValidationError


@dataclass(frozen=True, slots=True)
class BlobInfo:
    digest: str
    size: int
    stored_at: float | None = None  # when the blob was written (seconds since the epoch), if known


@runtime_checkable
class BlobStore(Protocol):
    """Where content lives, named by its digest (``sha256:<hex>``).

    Contracts every implementation keeps (checked by ``cairn.testing.BlobStoreTests``):

    * a blob is durable when ``put``/``put_many``/``put_file`` returns, so a version that refers
      to it may commit;
    * putting a blob that exists is a no-op; blobs are never modified in place;
    * ``get``/``copy_to`` verify the content against its digest and raise
      ``DigestMismatchError`` naming the blob rather than return damaged data;
    * ``get_range`` reads only the bytes asked for (a seek, a ranged GET, a slice);
    * a missing blob raises ``BlobNotFoundError`` (also a ``FileNotFoundError``).
    """

    @property
    def read_only(self) -> bool: ...

    def put(self, digest: str, data: bytes) -> None:
        """Store ``data``; the caller MUST have computed ``digest`` from it."""

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Store several small blobs at once (one durable write where the store allows it)."""

    def put_file(self, path: str, *, link: bool = False) -> BlobInfo:
        """Store the content of the file at ``path``, hashing it while it is copied.

        ``link=True`` allows a store to clone the file (copy-on-write) instead of copying it."""

    def get(self, digest: str) -> bytes:
        """The whole content of a blob, verified."""

    def open(self, digest: str) -> BinaryIO:
        """A stream of the blob's content (not verified; use ``get`` or ``copy_to`` for that)."""

    def copy_to(self, digest: str, dest: str) -> None:
        """Write the blob to the file ``dest`` (created or truncated), verifying it."""

    def get_range(self, digest: str, start: int, length: int) -> bytes:
        """Bytes ``[start, start + length)`` of a blob: fewer at its end, none past it.

        Not verified (a part of a blob has no digest to check); a reader that needs verified
        content reads the whole blob with ``get``. Only the range is read, not the blob."""

    def has_many(self, digests: Iterable[str]) -> set[str]:
        """Those of ``digests`` that are present."""

    def size(self, digest: str) -> int | None:
        """The size of a blob, or None if it is absent."""

    def delete_many(self, digests: Iterable[str]) -> int:
        """Remove blobs (absent ones are skipped); return how many were removed."""

    def list(self) -> Iterator[BlobInfo]:
        """Every blob in the store, in no particular order."""

    # -- capabilities: what a store can do beyond the above (an adapter asks, never guesses) --

    def small_many(self, digests: Sequence[str]) -> dict[str, bytes]:
        """The content (verified) of those of ``digests`` the store keeps as small blobs, read
        at once; the others are left out (a store that keeps no small blobs returns ``{}``)."""

    def get_many(self, digests: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        """``(digest, content)`` of each of ``digests`` (each once, in order), verified; a store
        that keeps small blobs reads those many at once. An absent blob raises as ``get``."""

    def indexed_sizes(self, digests: Sequence[str]) -> dict[str, int] | None:
        """The sizes of those of ``digests`` present, read from the store's index at once;
        None for a store without one (ask ``size`` blob by blob, only as far as needed)."""

    def local_path(self, digest: str) -> str | None:
        """The blob's own file on this machine, to be read (never changed) in place; None where
        the blob is not one (a small blob, a remote store, an absent blob)."""

    def presigned_url(self, digest: str, start: int = 0, length: int | None = None) -> str | None:
        """A URL a client may GET the blob (or ``length`` bytes from ``start``) from directly
        for an hour, for large blobs of an object store; None where there is none."""

    def presigned_gets(self, digests: Sequence[str]) -> dict[str, tuple[str, int]]:
        """``digest -> (URL, size)`` for those of ``digests`` a client may GET from the object
        store directly (``presigned_url``), found at once; ``{}`` where the store gives none."""

    def remove_stale_temp(self, older_than: float) -> int:
        """Delete partial files older than ``older_than`` seconds left by killed writers;
        return how many (0 for a store that writes none)."""

    def take_file(self, path: str, digest: str) -> BlobInfo:
        """Store the file at ``path``, which the caller verified against ``digest`` and made
        durable. A store on the same file system moves it in (a rename, no copy: the file is
        gone afterwards); others copy it as ``put_file`` does (``put_verified_file``)."""

    def close(self) -> None: ...


def put_verified_file(store: BlobStore, path: str, digest: str) -> BlobInfo:
    """``store.put_file(path)``, refused if the content is not ``digest`` (the file changed
    after the caller verified it): ``take_file`` of a store that copies."""
    info = store.put_file(path)
    if info.digest != digest:
        raise DigestMismatchError(f"file {path} changed while it was stored as blob {digest}")
    return info


def get_each(store: BlobStore, digests: Sequence[str]) -> Iterator[tuple[str, bytes]]:
    """``get_many`` of a store that reads blobs one by one."""
    for digest in dict.fromkeys(digests):
        yield digest, store.get(digest)


def check_range(start: int, length: int) -> None:
    """Refuse a negative offset or length (a caller's mistake, not the store's)."""
    if start < 0 or length < 0:
        raise ValidationError(f"invalid byte range: start {start}, length {length}")


def range_header(start: int, length: int) -> str:
    """The HTTP ``Range`` header value for ``length`` bytes (at least one) from ``start``."""
    return f"bytes={start}-{start + length - 1}"
