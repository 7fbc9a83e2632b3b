"""The REST API's wire format, shared by ``HttpService`` and the server.

Records travel as JSON objects with the dataclasses' field names (``cairn.core.to_json`` and
``from_json``: one typed mechanism; the server's OpenAPI schemas come from the same dataclasses);
manifest entries as the rows of manifest pages (``[path, digest, size, ref?, extra?]``); changes as
``[path, row or null]``.
Small blobs travel many per request in a binary batch: for each blob, its raw 32-byte SHA-256,
its length as 8 bytes big-endian, then its bytes. Whoever reads a batch re-hashes every blob.

Errors travel as ``{"error": {"type": <a cairn.errors class name>, "message": ...}}`` with an
HTTP status that says the same (401, 403, 404, 409, 413, 422, ...).
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from cairn import errors
from cairn.core import (
    Change,
    CollectionRecord,
    ManifestEntry,
    RegistryRecord,
    RunRecord,
    VersionRecord,
    check_digest,
    digest_from_raw,
    digest_raw,
    entry_path_problem,
    from_json,
    is_digest,
    to_json,
)
from cairn.errors import DigestMismatchError, ValidationError
from cairn.service._protocol import ImportRequest, VersionExport
from cairn.service._search import SearchRequest, SearchResult

API = "/api/v1"
BATCH_TYPE = "application/vnd.cairn.blobs"
# Files a client sends to a server on S3 while it hashes them (an upload begun before its
# digest, named by a second request): from the size S3 takes in parts, up to the size whose
# hash ends well within the server's 120 s wait for the name (at 18 MB/s). A server refuses
# an unnamed begin outside this range: an unnamed upload holds its parts until named.
UNNAMED_FROM = 8 << 20
UNNAMED_UP_TO = 2 << 30
_HEAD = struct.Struct(">32sQ")


# -- API keys ------------------------------------------------------------------------------------

_KEY_ID_RE = re.compile(r"^(?:cairn_)?([0-9a-f]{16})(?:_.*)?$", re.DOTALL)


def key_id_of(text: str) -> str:
    """The key id in ``text``: an id (16 hex digits), or a whole key ``cairn_<id>_<secret>``
    (or ``<id>_<secret>``). Never repeats ``text`` in its error: it may hold a secret."""
    m = _KEY_ID_RE.match(text.strip())
    if m is None:
        raise ValidationError(
            "not an API key id: give the 16 hex digits `cairn keys list` shows as 'id'"
            " (or the whole key, of which only the id is used)"
        )
    return m.group(1)


# -- records -------------------------------------------------------------------------------------


def run_to_json(r: RunRecord) -> dict[str, Any]:
    return dict(to_json(r))


def run_from_json(d: Mapping[str, Any]) -> RunRecord:
    return from_json(RunRecord, d)


def version_to_json(v: VersionRecord) -> dict[str, Any]:
    return dict(to_json(v))


def version_from_json(d: Mapping[str, Any]) -> VersionRecord:
    return from_json(VersionRecord, d)


def registry_to_json(r: RegistryRecord) -> dict[str, Any]:
    return dict(to_json(r))


def registry_from_json(d: Mapping[str, Any]) -> RegistryRecord:
    return from_json(RegistryRecord, d)


def export_to_json(x: VersionExport) -> dict[str, Any]:
    return dict(to_json(x))


def export_from_json(d: Mapping[str, Any]) -> VersionExport:
    return from_json(VersionExport, d)


def import_to_json(r: ImportRequest) -> dict[str, Any]:
    """The body of ``POST .../import``: entity and project are in the path."""
    return {k: v for k, v in to_json(r).items() if k not in ("entity", "project")}


def collection_to_json(c: CollectionRecord) -> dict[str, Any]:
    return dict(to_json(c))


def collection_from_json(d: Mapping[str, Any]) -> CollectionRecord:
    return from_json(CollectionRecord, d)


# -- search --------------------------------------------------------------------------------------


def search_request_to_json(r: SearchRequest) -> dict[str, Any]:
    return dict(to_json(r))


def search_result_to_json(r: SearchResult) -> dict[str, Any]:
    return dict(to_json(r))


def search_result_from_json(d: Mapping[str, Any]) -> SearchResult:
    return from_json(SearchResult, d)


# -- entries and changes ---------------------------------------------------------------------------


def changes_to_json(changes: Iterable[Change]) -> list[list[Any]]:
    return [[path, None if e is None else e.to_row()] for path, e in changes]


def changes_from_json(rows: Any) -> list[Change]:
    """Changes a client sent, checked as strictly as a manifest page from an unknown source:
    every path must be a valid entry path, sorted and unique; every stored entry a digest."""
    if not isinstance(rows, list):
        raise ValidationError("changes must be a list of [path, entry or null]")
    return list(iter_changes(rows))


def iter_changes(rows: Iterable[Any]) -> Iterator[Change]:
    """``changes_from_json`` one change at a time (rows decoded as they are needed)."""
    previous: str | None = None
    for row in rows:
        if not isinstance(row, list) or len(row) != 2 or not isinstance(row[0], str):
            raise ValidationError(f"malformed change {str(row)[:200]}")
        path = row[0]
        problem = entry_path_problem(path)
        if problem is not None:
            raise ValidationError(f"invalid entry path {path[:200]!r}: {problem}")
        if previous is not None and path <= previous:
            raise ValidationError("changes must be sorted by path, one per path")
        previous = path
        entry = None
        if row[1] is not None:
            entry = ManifestEntry.from_row(row[1])
            if entry.path != path:
                raise ValidationError(f"change for {path!r} carries an entry for {entry.path!r}")
            if entry.ref is None:
                check_digest(entry.digest)
                if entry.size is None:
                    raise ValidationError(f"entry {path!r} is stored content without a size")
        yield path, entry


# -- blob batches ------------------------------------------------------------------------------------


def pack_blobs(items: Sequence[tuple[str, bytes]]) -> bytes:
    return b"".join(_packed_parts(items))


def packed_size(items: Sequence[tuple[str, bytes]]) -> int:
    """The length of ``pack_blobs(items)``, without packing them."""
    return sum(_HEAD.size + len(data) for _, data in items)


def packed_chunks(items: Iterable[tuple[str, bytes]], chunk: int) -> Iterator[bytes]:
    """``pack_blobs(items)`` as pieces of about ``chunk`` bytes, made as ``items`` come: a body
    sent as it is made, never a copy of the whole batch; a blob of ``chunk`` bytes or more is a
    piece of its own, not copied (each piece costs a server a hop and a write: few, not one
    per blob)."""
    parts: list[bytes] = []
    size = 0
    for digest, data in items:
        parts.append(pack_head(digest, len(data)))
        if len(data) >= chunk:
            yield b"".join(parts)
            yield data
            parts, size = [], 0
            continue
        parts.append(data)
        size += _HEAD.size + len(data)
        if size >= chunk:
            yield b"".join(parts)
            parts, size = [], 0
    if parts:
        yield b"".join(parts)


def _packed_parts(items: Sequence[tuple[str, bytes]]) -> Iterator[bytes]:
    for digest, data in items:
        yield _HEAD.pack(digest_raw(digest), len(data))
        yield data


def unpack_blobs(body: bytes | memoryview) -> Iterator[tuple[str, bytes]]:
    """The blobs of a batch, each re-hashed; a blob with other content raises
    ``DigestMismatchError`` and a malformed batch ``ValidationError``."""
    view = memoryview(body)
    pos = 0
    while pos < len(view):
        if pos + _HEAD.size > len(view):
            raise ValidationError("truncated blob batch")
        raw, length = _HEAD.unpack_from(view, pos)
        pos += _HEAD.size
        if pos + length > len(view):
            raise ValidationError("truncated blob batch")
        data = bytes(view[pos : pos + length])
        pos += length
        digest = digest_from_raw(raw)
        if hashlib.sha256(data).digest() != raw:
            raise DigestMismatchError(
                f"blob {digest} was sent with other content (digest mismatch); nothing was stored"
            )
        yield digest, data


class BatchReader:
    """Reads a batch as it arrives, chunk by chunk: ``feed`` returns the blobs completed by a
    chunk, not yet verified (the caller hashes them, off the event loop); ``end`` refuses a
    batch cut short. Holds at most one blob that is still arriving."""

    def __init__(self, max_blob: int) -> None:
        self._buf = bytearray()
        self._max = max_blob

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes]]:
        buf = self._buf
        buf += chunk
        out: list[tuple[bytes, bytes]] = []
        pos = 0
        while len(buf) - pos >= _HEAD.size:
            raw, length = _HEAD.unpack_from(buf, pos)
            if length > self._max:
                raise ValidationError(f"a blob of {length} bytes in a batch: at most {self._max}")
            if len(buf) - pos - _HEAD.size < length:
                break
            start = pos + _HEAD.size
            out.append((bytes(raw), bytes(buf[start : start + length])))
            pos = start + length
        del buf[:pos]
        return out

    def end(self) -> None:
        if self._buf:
            raise ValidationError("truncated blob batch")


def verify_blobs(items: Sequence[tuple[bytes, bytes]]) -> list[tuple[str, bytes]]:
    """Blobs read by ``BatchReader``, each re-hashed: ``DigestMismatchError`` for the first
    whose content has another digest."""
    out: list[tuple[str, bytes]] = []
    for raw, data in items:
        digest = digest_from_raw(raw)
        if hashlib.sha256(data).digest() != raw:
            raise DigestMismatchError(
                f"blob {digest} was sent with other content (digest mismatch); refused"
            )
        out.append((digest, data))
    return out


def pack_head(digest: str, length: int) -> bytes:
    """The 40 bytes that precede a blob of ``length`` bytes in a batch."""
    return _HEAD.pack(digest_raw(digest), length)


def check_digests(values: Any, limit: int) -> list[str]:
    if not isinstance(values, list) or not all(is_digest(v) for v in values):
        raise ValidationError("expected a list of digests 'sha256:<64 hex>'")
    if len(values) > limit:
        raise ValidationError(f"at most {limit} digests per request")
    return list(values)


# -- errors ------------------------------------------------------------------------------------------

STATUS: dict[type[errors.CairnError], int] = {
    errors.AuthenticationError: 401,
    errors.PermissionDeniedError: 403,
    errors.NotFoundError: 404,
    errors.ConflictError: 409,
    errors.UnavailableError: 503,
    errors.UsageError: 409,
    errors.DigestMismatchError: 422,
    errors.ValidationError: 400,
    errors.ArtifactStatusError: 409,
    errors.WaitTimeoutError: 408,
    errors.CommError: 500,
}


def status_of(exc: errors.CairnError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_body(exc: errors.CairnError) -> dict[str, Any]:
    """A server's answer to ``exc``: its ``public`` text if it has one (the server logs the
    rest), else its text."""
    message = str(exc) if exc.public is None else exc.public
    return {"error": {"type": type(exc).__name__, "message": message}}


def error_from_body(status: int, body: Any, where: str) -> errors.CairnError:
    """The cairn error a server's answer stands for (only names from ``cairn.errors``)."""
    err = body.get("error") if isinstance(body, dict) else None
    name = err.get("type") if isinstance(err, dict) else None
    message = err.get("message") if isinstance(err, dict) else None
    if status == 401:
        return errors.AuthenticationError(
            f"{where} refused the API key (401): {message or 'no or bad key'};"
            " set CAIRN_API_KEY to a valid key"
        )
    if status == 403:
        return errors.PermissionDeniedError(
            f"{where}: the API key may not do this (403): {message or 'permission denied'}"
        )
    cls: Any = getattr(errors, name, None) if isinstance(name, str) else None
    if isinstance(cls, type) and issubclass(cls, errors.CairnError) and name in errors.__all__:
        made: errors.CairnError = cls(message or f"{name} ({status})")
        return made
    if status == 404:
        return errors.NotFoundError(f"{where}: not found (404): {message or ''}".rstrip(": "))
    if status == 413:
        return errors.ValidationError(f"{where}: request too large (413): {message or ''}")
    return errors.CommError(f"{where} answered {status}: {message or str(body)[:300]}")


# -- byte ranges ---------------------------------------------------------------------------------


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """``(start, length)`` that an HTTP ``Range`` header asks of a blob of ``size`` bytes.

    One range of bytes is understood (``bytes=a-b``, ``bytes=a-``, ``bytes=-n``); None for
    anything else (several ranges, other units, garbage), which HTTP lets a server answer with
    the whole blob. A range that starts at or past the end gives length 0 (answered with 416)."""
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()):
        return None
    if not first:  # the last n bytes
        if not last.isdigit() or int(last) == 0:
            return None
        n = min(int(last), size)
        return size - n, n
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    start = int(first)
    stop = min(int(last) + 1, size) if last else size
    if last and int(last) < start:
        return None
    if start >= size:
        return size, 0
    return start, stop - start
