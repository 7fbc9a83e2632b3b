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

import functools
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol
from urllib.parse import parse_qs, quote, unquote, urlparse

from cairn._extras import missing_extra
from cairn.core import ManifestEntry, digest_from_hasher, new_hasher, normalize_entry_path
from cairn.errors import (
    CommError,
    DigestMismatchError,
    PermissionDeniedError,
    ValidationError,
)
from cairn.sdk._statcache import StatCache, file_digest

CHUNK = 1 << 20
SHA256 = "sha256:"


class ReferenceHandler(Protocol):
    """What one URI scheme must do: list entries when adding, fetch one when downloading."""

    def entries(
        self, uri: str, name: str | None, *, checksum: bool, max_objects: int
    ) -> list[ManifestEntry]:
        """The entries that ``uri`` stands for (several for a directory or prefix)."""

    def fetch(self, entry: ManifestEntry, dest: str) -> None:
        """Write the entry's content to the new file ``dest``.

        Raises ``_Changed`` when the content differs from what was logged and
        ``FileNotFoundError`` when it is gone."""


class _Changed(Exception):
    """The referenced content is not what was logged (the message says how)."""


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
    except _Changed as exc:
        _remove(dest)
        raise DigestMismatchError(
            f"{what}: the content changed since the artifact was logged ({exc}); pass"
            " allow_missing_references=True to skip such entries"
        ) from None
    except FileNotFoundError as exc:
        _remove(dest)
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


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def _entry_path(name: str, uri: str) -> str:
    try:
        return normalize_entry_path(name)
    except ValidationError as exc:
        raise ValidationError(
            f"reference {uri!r} cannot be stored as entry {name!r}: {exc}; pass name= to choose"
            " the path inside the artifact"
        ) from None


def _too_many(uri: str, limit: int, what: str) -> ValidationError:
    return ValidationError(
        f"reference {uri!r} holds more than max_objects={limit} {what}; raise max_objects or"
        " reference a narrower path"
    )


class _Sink:
    """Writes a stream to a file, counting and hashing it."""

    def __init__(self, dest: str) -> None:
        self._f: BinaryIO = open(dest, "wb")  # noqa: SIM115 - closed in close()
        self._hasher = new_hasher()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._f.write(chunk)
        self._hasher.update(chunk)
        self.size += len(chunk)

    def close(self) -> str:
        self._f.close()
        return digest_from_hasher(self._hasher)


def _check_fetched(entry: ManifestEntry, digest: str, size: int) -> None:
    if entry.size is not None and size != entry.size:
        raise _Changed(f"size was {entry.size}, is now {size}")
    if entry.digest.startswith(SHA256) and digest != entry.digest:
        raise _Changed(f"digest was {entry.digest}, is now {digest}")


# -- file:// -------------------------------------------------------------------------------------


def file_path_of_uri(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise ValidationError(f"{uri!r} is not a file:// URI")
    if parsed.netloc not in ("", "localhost"):
        raise ValidationError(f"{uri!r} names another host; file:// references must be local")
    return unquote(parsed.path)


class FileReferences:
    """``file://`` files and directories (on this machine or a shared file system)."""

    def __init__(self, cache: StatCache | None) -> None:
        self._cache = cache

    def entries(
        self, uri: str, name: str | None, *, checksum: bool, max_objects: int
    ) -> list[ManifestEntry]:
        path = file_path_of_uri(uri)
        if not os.path.exists(path):
            raise ValidationError(f"reference {uri!r}: {path} does not exist")
        base_name = name if name is not None else os.path.basename(path.rstrip("/"))
        if not checksum and os.path.isfile(path):
            return [ManifestEntry(_entry_path(base_name, uri), uri, None, uri)]
        if os.path.isfile(path):
            digest = file_digest(path, self._cache)
            return [ManifestEntry(_entry_path(base_name, uri), digest, os.stat(path).st_size, uri)]
        out: list[ManifestEntry] = []
        prefix = _entry_path(name, uri) + "/" if name else ""
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames.sort()
            for fname in sorted(filenames):
                if len(out) >= max_objects:
                    raise _too_many(uri, max_objects, "files")
                full = os.path.join(dirpath, fname)
                rel = os.path.relpath(full, path).replace(os.sep, "/")
                ref = "file://" + quote(full)
                if not checksum:
                    # A directory recorded without checksums still lists its files (by URI).
                    out.append(ManifestEntry(_entry_path(prefix + rel, uri), ref, None, ref))
                    continue
                out.append(
                    ManifestEntry(
                        _entry_path(prefix + rel, uri),
                        file_digest(full, self._cache),
                        os.stat(full).st_size,
                        ref,
                    )
                )
        return out

    def fetch(self, entry: ManifestEntry, dest: str) -> None:
        assert entry.ref is not None
        src = file_path_of_uri(entry.ref)
        if not os.path.exists(src):
            raise FileNotFoundError(f"{src} does not exist any more")
        if not entry.digest.startswith(SHA256):
            # Recorded without a checksum: copy whatever is there now.
            if os.path.isdir(src):
                shutil.copytree(src, dest)
            else:
                shutil.copyfile(src, dest)
            return
        sink = _Sink(dest)
        try:
            with open(src, "rb") as f:
                while chunk := f.read(CHUNK):
                    sink.write(chunk)
        finally:
            digest = sink.close()
        _check_fetched(entry, digest, sink.size)


# -- http(s):// ----------------------------------------------------------------------------------

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
        path = _entry_path(base_name, uri)
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
                        raise _Changed(f"ETag was {pinned!r}, is now {now!r}")
                sink = _Sink(dest)
                try:
                    for chunk in response.iter_bytes(CHUNK):
                        sink.write(chunk)
                finally:
                    digest = sink.close()
        except httpx.HTTPError as exc:
            raise CommError(f"reference {uri!r}: {exc}") from None
        if entry.digest != uri:
            _check_fetched(entry, digest, sink.size)


# -- s3:// ---------------------------------------------------------------------------------------

_S3_ENV = (
    "AWS_MAX_ATTEMPTS",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)
_s3_clients: dict[tuple[Any, ...], Any] = {}
_s3_lock = threading.Lock()


def _s3_client() -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise missing_extra("s3:// references", "s3", "boto3") from None
    key = (os.getpid(), *(os.environ.get(v) for v in _S3_ENV))
    with _s3_lock:
        client = _s3_clients.get(key)
        if client is None:
            # Attempts come from AWS_MAX_ATTEMPTS (default 3), like every AWS tool.
            config = Config(retries={"mode": "standard"})
            client = boto3.session.Session().client(
                "s3", config=config, endpoint_url=w_and_b_endpoint()
            )
            _s3_clients[key] = client
        return client


def w_and_b_endpoint() -> str | None:
    """W&B's ``AWS_S3_ENDPOINT_URL``, when boto3's own variables (``AWS_ENDPOINT_URL_S3``,
    ``AWS_ENDPOINT_URL``, read by boto3 itself) are unset."""
    env = os.environ
    if env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"):
        return None
    return env.get("AWS_S3_ENDPOINT_URL") or None


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    key: str
    version_id: str | None = None

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        if not uri.lower().startswith("s3://"):
            raise ValidationError(f"{uri!r} is not an s3:// URI")
        rest = uri[len("s3://") :]
        bucket, _, key = rest.partition("/")
        key, _, query = key.partition("?")
        if not bucket:
            raise ValidationError(f"reference {uri!r} names no bucket: use s3://bucket/key")
        version = parse_qs(query).get("versionId", [None])[0]
        return cls(bucket, key, version)

    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def _without_folders(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop empty "folder" objects: a zero-byte ``a/b`` when there are objects under ``a/b/``
    (tools make them for directories; a file and a directory cannot share a path)."""
    folders: set[str] = set()
    for obj in objects:
        parts = obj["Key"].split("/")
        folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
    return [o for o in objects if o.get("Size") or o["Key"] not in folders]


class S3References:
    """``s3://bucket/key`` objects and ``s3://bucket/prefix`` trees on any S3-compatible store."""

    def __init__(self) -> None:
        self._client = _s3_client()

    def _call(self, uri: str, fn: Callable[[], Any]) -> Any:
        """Run one S3 call, translating botocore's errors into cairn's."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return fn()
        except NoCredentialsError:
            raise CommError(
                f"reference {uri!r}: no AWS credentials found; set AWS_ACCESS_KEY_ID and"
                " AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
            ) from None
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "NoSuchVersion", "404", "NotFound") or status == 404:
                if code == "NoSuchBucket":
                    raise FileNotFoundError(f"bucket of {uri} does not exist") from None
                raise FileNotFoundError(f"{uri} does not exist") from None
            if code == "PreconditionFailed" or status == 412:
                raise _Changed("its ETag is not the one logged") from None
            if code in ("AccessDenied", "403", "Forbidden") or status == 403:
                raise PermissionDeniedError(
                    f"reference {uri!r}: access denied by the S3 store; check the credentials"
                ) from None
            raise CommError(f"reference {uri!r}: S3 error {code}: {error.get('Message')}") from None
        except BotoCoreError as exc:
            raise CommError(
                f"reference {uri!r}: {exc}; check AWS_ENDPOINT_URL and the network"
            ) from None

    def _head(self, loc: S3Location, uri: str) -> dict[str, Any] | None:
        kwargs: dict[str, Any] = {"Bucket": loc.bucket, "Key": loc.key}
        if loc.version_id:
            kwargs["VersionId"] = loc.version_id
        try:
            head: dict[str, Any] = self._call(uri, lambda: self._client.head_object(**kwargs))
        except FileNotFoundError:
            if loc.version_id:
                raise
            return None
        return head

    def _versioned(self, bucket: str, uri: str) -> bool:
        got = self._call(uri, lambda: self._client.get_bucket_versioning(Bucket=bucket))
        return bool(got.get("Status") == "Enabled")

    def _list(self, loc: S3Location, prefix: str, uri: str, limit: int) -> Iterator[dict[str, Any]]:
        """The latest objects under ``prefix`` (keys, ETags, sizes, version ids)."""
        versioned = self._versioned(loc.bucket, uri)
        op = "list_object_versions" if versioned else "list_objects_v2"
        pages = self._client.get_paginator(op).paginate(Bucket=loc.bucket, Prefix=prefix)
        count = 0
        it = iter(pages)
        while True:
            page = self._call(uri, lambda: next(it, None))
            if page is None:
                return
            for obj in page.get("Versions" if versioned else "Contents", []):
                if versioned and not obj.get("IsLatest"):
                    continue
                if obj["Key"].endswith("/") and not obj.get("Size"):
                    continue  # a "directory" marker, not content
                count += 1
                if count > limit:
                    raise _too_many(uri, limit, "objects")
                yield obj

    def entries(
        self, uri: str, name: str | None, *, checksum: bool, max_objects: int
    ) -> list[ManifestEntry]:
        loc = S3Location.parse(uri)
        if not checksum:
            # W&B's name for it: the key's last part, or the bucket's name for a bucket root.
            base = name if name is not None else loc.key.rstrip("/").rsplit("/", 1)[-1]
            return [ManifestEntry(_entry_path(base or loc.bucket, uri), uri, None, uri)]
        if loc.key and not loc.key.endswith("/"):
            head = self._head(loc, uri)
            # A "folder" object (content type application/x-directory, as some tools make for
            # a directory) stands for the objects under it, as in W&B.
            if head is not None and "x-directory" not in str(head.get("ContentType", "")):
                base = name if name is not None else loc.key.rsplit("/", 1)[-1]
                return [self._entry(_entry_path(base, uri), loc.bucket, loc.key, head, uri)]
        prefix = loc.key if not loc.key or loc.key.endswith("/") else loc.key + "/"
        path_prefix = _entry_path(name, uri) + "/" if name else ""
        out = [
            self._entry(
                _entry_path(path_prefix + obj["Key"][len(prefix) :], uri),
                loc.bucket,
                obj["Key"],
                obj,
                uri,
            )
            for obj in _without_folders(list(self._list(loc, prefix, uri, max_objects)))
        ]
        if not out:
            raise ValidationError(
                f"reference {uri!r}: there is no such object and no object under"
                f" s3://{loc.bucket}/{prefix}"
            )
        return out

    def _entry(
        self, path: str, bucket: str, key: str, obj: dict[str, Any], uri: str
    ) -> ManifestEntry:
        etag = str(obj.get("ETag", "")).strip('"')
        size = obj.get("ContentLength", obj.get("Size"))
        extra: dict[str, Any] = {"etag": etag}
        version = obj.get("VersionId")
        if version and version != "null":
            extra["versionID"] = version
        return ManifestEntry(
            path, etag, None if size is None else int(size), f"s3://{bucket}/{key}", extra
        )

    def fetch(self, entry: ManifestEntry, dest: str) -> None:
        assert entry.ref is not None
        loc = S3Location.parse(entry.ref)
        uri = entry.ref
        if entry.digest == uri:  # recorded without a checksum: whatever is there now
            self._fetch_unpinned(loc, dest, uri)
            return
        extra = entry.extra or {}
        kwargs: dict[str, Any] = {"Bucket": loc.bucket, "Key": loc.key}
        version = extra.get("versionID")
        if version:
            kwargs["VersionId"] = version  # the pinned version: content cannot have changed
        elif extra.get("etag"):
            kwargs["IfMatch"] = f'"{extra["etag"]}"'
        response = self._call(uri, lambda: self._client.get_object(**kwargs))
        now = str(response.get("ETag", "")).strip('"')
        if extra.get("etag") and now != extra["etag"]:
            raise _Changed(f"ETag was {extra['etag']!r}, is now {now!r}")
        size = self._write(response["Body"], dest, uri)
        if entry.size is not None and size != entry.size:
            raise _Changed(f"size was {entry.size}, is now {size}")

    def _write(self, body: Any, dest: str, uri: str) -> int:
        sink = _Sink(dest)
        try:
            while True:
                chunk = self._call(uri, lambda: body.read(CHUNK))
                if not chunk:
                    break
                sink.write(chunk)
        finally:
            sink.close()
            body.close()
        return sink.size

    def _fetch_unpinned(self, loc: S3Location, dest: str, uri: str) -> None:
        if loc.key and not loc.key.endswith("/"):
            try:
                response = self._call(
                    uri, lambda: self._client.get_object(Bucket=loc.bucket, Key=loc.key)
                )
            except FileNotFoundError:
                pass  # maybe a prefix
            else:
                if "x-directory" not in str(response.get("ContentType", "")):
                    self._write(response["Body"], dest, uri)
                    return
                response["Body"].close()  # a "folder" object: the objects under it
        prefix = loc.key if not loc.key or loc.key.endswith("/") else loc.key + "/"
        found = False
        os.makedirs(dest)
        for obj in _without_folders(list(self._list(loc, prefix, uri, 2**62))):
            rel = _entry_path(obj["Key"][len(prefix) :], uri)
            target = os.path.join(dest, *rel.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            get = functools.partial(self._client.get_object, Bucket=loc.bucket, Key=obj["Key"])
            response = self._call(uri, get)
            self._write(response["Body"], target, uri)
            found = True
        if not found:
            raise FileNotFoundError(f"{uri} does not exist (no object or prefix)")
