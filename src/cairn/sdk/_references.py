"""References: entries that point at content outside the store, by URI (W&B's add_reference).

Nothing is copied into the store. An entry records the URI and what pins its content:

| scheme | with ``checksum=True`` | download |
|---|---|---|
| ``file://`` | SHA-256 digest and size of each file (a directory expands to its files) | copies and checks the digest |
| ``http(s)://`` | the strong ETag (``extra["etag"]``) and size; without one, the SHA-256 of the body | GET, checks ETag, size or digest |
| ``s3://bucket/key`` | ETag, size and ``versionID`` where the bucket is versioned; a prefix expands to its objects | GET of the pinned version (or If-Match the ETag) |

With ``checksum=False`` only the URI is recorded (the entry's digest is the URI, as in W&B) and
whatever is there at download time is fetched. A reference whose content changed since it was
logged fails to download with ``DigestMismatchError`` naming the entry; a vanished one with
``FileNotFoundError``; ``allow_missing_references=True`` turns both into warnings.

S3 endpoint, region and credentials come from the standard AWS environment (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, ...), so any S3-compatible store works. boto3 is the
optional extra ``cairn-artifacts[s3]``.
"""

from __future__ import annotations

from cairn.core import ManifestEntry, normalize_entry_path
from cairn.errors import (
    DigestMismatchError,
    ValidationError,
)
from cairn.sdk._reference_file import FileReferences
from cairn.sdk._reference_handler import ContentChanged, ReferenceHandler, remove_path
from cairn.sdk._reference_http import HttpReferences
from cairn.sdk._reference_s3 import S3References
from cairn.sdk._statcache import StatCache


def add_reference_entries(
    uri: str, name: str | None, *, checksum: bool, max_objects: int, cache: StatCache | None
) -> list[ManifestEntry]:
    """The entries ``Artifact.add_reference(uri, name, checksum, max_objects)`` adds."""
    if max_objects < 1:
        raise ValidationError(f"max_objects must be at least 1, got {max_objects}")
    handler = handler_for(uri, cache)
    try:
        return handler.entries(uri, name, checksum=checksum, max_objects=max_objects)
    except FileNotFoundError as exc:
        raise ValidationError(f"reference {uri!r} cannot be added: {exc}") from None


class UriReferences:
    """A scheme cairn cannot fetch (``gs://``, ``azure://``, ...): kept by URI, as W&B does. The
    digest is the URI itself, the size unknown, and a download skips the entry."""

    def entries(
        self, uri: str, name: str | None, *, checksum: bool, max_objects: int
    ) -> list[ManifestEntry]:
        path = normalize_entry_path(name or uri.split("://", 1)[1].rstrip("/").rsplit("/", 1)[-1])
        return [ManifestEntry(path, uri, None, uri)]

    def fetch(self, entry: ManifestEntry, dest: str) -> None:
        raise _Unfetchable(entry.ref)


class _Unfetchable(Exception):
    """A reference whose scheme cairn cannot fetch: skipped on download."""


def is_fetchable(uri: str) -> bool:
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    return scheme in ("file", "http", "https", "s3")


def fetch_reference(entry: ManifestEntry, dest: str, cache: StatCache | None) -> None:
    """Download a reference entry to ``dest``, checking it still is what was logged."""
    assert entry.ref is not None
    what = f"reference entry {entry.path!r} ({entry.ref})"
    try:
        handler_for(entry.ref, cache).fetch(entry, dest)
    except ContentChanged as exc:
        remove_path(dest)
        raise DigestMismatchError(
            f"{what}: the content changed since the artifact was logged ({exc}); pass"
            " allow_missing_references=True to skip such entries"
        ) from None
    except FileNotFoundError as exc:
        remove_path(dest)
        raise FileNotFoundError(f"{what}: {exc}") from None


def handler_for(uri: str, cache: StatCache | None) -> ReferenceHandler:
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme == "file":
        return FileReferences(cache)
    if scheme in ("http", "https"):
        return HttpReferences()
    if scheme == "s3":
        return S3References()
    if scheme and scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return UriReferences()
    raise ValidationError(
        f"reference {uri!r} has no URI scheme: use file://, http://, https://, s3:// or any"
        " scheme://"
    )
