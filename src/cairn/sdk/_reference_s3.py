"""``s3://`` references: objects and prefixes pinned by ETag, size and ``versionID`` (boto3, the
``s3`` extra; endpoint and credentials from the standard AWS environment)."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from cairn._extras import missing_extra
from cairn.core import ManifestEntry
from cairn.errors import (
    CommError,
    PermissionDeniedError,
    ValidationError,
)
from cairn.sdk._reference_handler import ContentChanged, Sink, reference_entry_path, too_many
from cairn.storage import CHUNK

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
                raise ContentChanged("its ETag is not the one logged") from None
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
                    raise too_many(uri, limit, "objects")
                yield obj

    def entries(
        self, uri: str, name: str | None, *, checksum: bool, max_objects: int
    ) -> list[ManifestEntry]:
        loc = S3Location.parse(uri)
        if not checksum:
            # W&B's name for it: the key's last part, or the bucket's name for a bucket root.
            base = name if name is not None else loc.key.rstrip("/").rsplit("/", 1)[-1]
            return [ManifestEntry(reference_entry_path(base or loc.bucket, uri), uri, None, uri)]
        if loc.key and not loc.key.endswith("/"):
            head = self._head(loc, uri)
            # A "folder" object (content type application/x-directory, as some tools make for
            # a directory) stands for the objects under it, as in W&B.
            if head is not None and "x-directory" not in str(head.get("ContentType", "")):
                base = name if name is not None else loc.key.rsplit("/", 1)[-1]
                return [
                    self._entry(reference_entry_path(base, uri), loc.bucket, loc.key, head, uri)
                ]
        prefix = loc.key if not loc.key or loc.key.endswith("/") else loc.key + "/"
        path_prefix = reference_entry_path(name, uri) + "/" if name else ""
        out = [
            self._entry(
                reference_entry_path(path_prefix + obj["Key"][len(prefix) :], uri),
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
            raise ContentChanged(f"ETag was {extra['etag']!r}, is now {now!r}")
        size = self._write(response["Body"], dest, uri)
        if entry.size is not None and size != entry.size:
            raise ContentChanged(f"size was {entry.size}, is now {size}")

    def _write(self, body: Any, dest: str, uri: str) -> int:
        sink = Sink(dest)
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
            rel = reference_entry_path(obj["Key"][len(prefix) :], uri)
            target = os.path.join(dest, *rel.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            get = functools.partial(self._client.get_object, Bucket=loc.bucket, Key=obj["Key"])
            response = self._call(uri, get)
            self._write(response["Body"], target, uri)
            found = True
        if not found:
            raise FileNotFoundError(f"{uri} does not exist (no object or prefix)")
