"""``http(s)://`` references: single files pinned by their strong ETag (or SHA-256) and size."""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import unquote, urlparse

from cairn.core import ManifestEntry, digest_from_hasher, new_hasher
from cairn.errors import (
    CommError,
    PermissionDeniedError,
    ValidationError,
)
from cairn.sdk._reference_handler import (
    ContentChanged,
    Sink,
    check_fetched,
    reference_entry_path,
)
from cairn.storage import CHUNK

_http_clients: dict[int, Any] = {}
_http_lock = threading.Lock()


def _http_client() -> Any:
    import httpx

    with _http_lock:
        client = _http_clients.get(os.getpid())
        if client is None:
            client = httpx.Client(follow_redirects=True, timeout=httpx.Timeout(60.0, connect=10.0))
            _http_clients[os.getpid()] = client
        return client


def _strong_etag(value: str | None) -> str | None:
    """The ETag's value without quotes; None for a missing or weak (``W/``) one, which does not
    promise the same bytes."""
    if not value or value.startswith("W/"):
        return None
    return value.strip('"')


class HttpReferences:
    """``http://`` and ``https://`` URLs of single files."""

    def _check_uri(self, uri: str) -> None:
        parsed = urlparse(uri)
        if not parsed.hostname:
            raise ValidationError(f"reference {uri!r} has no host")
        if parsed.username or parsed.password:
            raise ValidationError(
                f"reference {parsed.scheme}://...@{parsed.hostname}: credentials in a URL would be"
                " stored in the manifest for everyone to read; use a URL without them"
            )

    def entries(
        self, uri: str, name: str | None, *, checksum: bool, max_objects: int
    ) -> list[ManifestEntry]:
        self._check_uri(uri)
        base_name = name
        if base_name is None:
            base_name = unquote(urlparse(uri).path).rsplit("/", 1)[-1]
        if not base_name:
            raise ValidationError(
                f"reference {uri!r} has no file name in its path; pass name= to choose the"
                " path inside the artifact"
            )
        path = reference_entry_path(base_name, uri)
        if not checksum:
            return [ManifestEntry(path, uri, None, uri)]
        import httpx

        try:
            with _http_client().stream("GET", uri) as response:
                self._raise_for_status(uri, response)
                etag = _strong_etag(response.headers.get("etag"))
                length = response.headers.get("content-length")
                if etag is not None:
                    size = int(length) if length is not None and length.isdigit() else None
                    return [ManifestEntry(path, etag, size, uri, {"etag": etag})]
                # No ETag to pin it: pin the content itself.
                hasher = new_hasher()
                size = 0
                for chunk in response.iter_bytes(CHUNK):
                    hasher.update(chunk)
                    size += len(chunk)
                return [ManifestEntry(path, digest_from_hasher(hasher), size, uri)]
        except httpx.HTTPError as exc:
            raise CommError(f"reference {uri!r}: {exc}") from None

    def _raise_for_status(self, uri: str, response: Any) -> None:
        status = int(response.status_code)
        if status in (404, 410):
            raise FileNotFoundError(f"{uri} answered {status} {response.reason_phrase}")
        if status in (401, 403):
            raise PermissionDeniedError(
                f"reference {uri!r}: the server answered {status} {response.reason_phrase}"
            )
        if status >= 400:
            raise CommError(
                f"reference {uri!r}: the server answered {status} {response.reason_phrase}"
            )

    def fetch(self, entry: ManifestEntry, dest: str) -> None:
        import httpx

        assert entry.ref is not None
        uri = entry.ref
        pinned = (entry.extra or {}).get("etag")
        try:
            with _http_client().stream("GET", uri) as response:
                self._raise_for_status(uri, response)
                if pinned is not None:
                    now = _strong_etag(response.headers.get("etag"))
                    if now != pinned:
                        raise ContentChanged(f"ETag was {pinned!r}, is now {now!r}")
                sink = Sink(dest)
                try:
                    for chunk in response.iter_bytes(CHUNK):
                        sink.write(chunk)
                finally:
                    digest = sink.close()
        except httpx.HTTPError as exc:
            raise CommError(f"reference {uri!r}: {exc}") from None
        if entry.digest != uri:
            check_fetched(entry, digest, sink.size)
