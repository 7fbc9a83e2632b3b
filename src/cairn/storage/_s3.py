"""Content-addressed blobs in an S3-compatible object store (AWS S3, MinIO, ...).

One object per blob at ``<prefix>sha256/ab/cdef...``. Every upload carries the blob's SHA-256
(``x-amz-checksum-sha256``), so the object store itself refuses content that does not match its
name; every read is verified again on the way out. The endpoint and credentials come from the
standard AWS environment (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION``, profiles); boto3 is an optional dependency (``pip install 'cairn-artifacts[s3]'``).

Presence checks cost one HEAD request per blob here: a server keeps an index in its catalog
instead (``cairn.catalog.CatalogBlobStore``) and asks this store only for content.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, cast

from cairn.core import (
    BLOB_ROOT,
    blob_path,
    digest_bytes,
    digest_from_hasher,
    digest_of_blob_path,
    digest_raw,
    new_hasher,
)
from cairn.errors import BlobNotFoundError, CommError, DigestMismatchError, UsageError
from cairn.storage._base import (
    BlobInfo,
    check_range,
    get_each,
    put_verified_file,
    range_header,
)
from cairn.storage._hashing import CHUNK, hash_file
from cairn.storage._location import location_withheld
from cairn.storage._s3_client import DEFAULT_REGION, BodyReader, make_client

# Objects of blobs streamed before their digest: ``<prefix>streamed/<upload id>``, tagged with
# their digest (``DIGEST_TAG``); the catalog's index row of each names its key.
STREAMED_ROOT = "streamed"
DIGEST_TAG = "cairn-sha256"
PART_SIZE = 64 << 20  # multipart uploads above this size (S3's single PUT limit is 5 GiB)
_THREADS = 8


PRESIGN_SECONDS = 3600  # how long a presigned URL is valid


def checksum_b64(digest: str) -> str:
    """The ``x-amz-checksum-sha256`` form (base64 of the raw digest) of a cairn digest."""
    return base64.b64encode(digest_raw(digest)).decode()


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (bucket, ``some/prefix/``)."""
    if not url.startswith("s3://"):
        raise UsageError(f"{url!r} is not an s3:// URL")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise UsageError(f"{url!r} names no bucket; use s3://bucket/prefix")
    prefix = prefix.strip("/")
    return bucket, (prefix + "/" if prefix else "")


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    err = response.get("Error", {}) if isinstance(response, dict) else {}
    return str(err.get("Code", ""))


class S3BlobStore:
    """A BlobStore on an S3 bucket (under a key prefix)."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any | None = None,
        endpoint: str | None = None,
        region: str | None = None,
    ) -> None:
        """``client``: a boto3 S3 client; None: one made for ``endpoint`` and ``region`` (None:
        ``DEFAULT_REGION``)."""
        self.bucket = bucket
        self.prefix = prefix
        self._client = (
            client if client is not None else make_client(endpoint, region or DEFAULT_REGION)
        )

    @classmethod
    def from_url(
        cls, url: str, *, endpoint: str | None = None, region: str | None = None
    ) -> S3BlobStore:
        bucket, prefix = parse_s3_url(url)
        return cls(bucket, prefix, endpoint=endpoint, region=region)

    @property
    def client(self) -> Any:
        return self._client

    @property
    def read_only(self) -> bool:
        return False

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key_of(self, digest: str) -> str:
        return self.prefix + blob_path(digest)

    def streamed_key(self, upload_id: str) -> str:
        """Where a blob streamed before its digest is written (its upload's id: the parts go to
        S3 before anyone knows the digest); the catalog's index names it (``object_key``)."""
        return f"{self.prefix}{STREAMED_ROOT}/{upload_id}"

    def tag_digest(self, key: str, digest: str) -> None:
        """Tag the object at ``key`` with the digest of its content (``cairn-sha256``), so a
        bucket whose catalog is lost can still tell which blob each streamed object is."""
        try:
            self._client.put_object_tagging(
                Bucket=self.bucket,
                Key=key,
                Tagging={"TagSet": [{"Key": DIGEST_TAG, "Value": digest}]},
            )
        except Exception as exc:  # noqa: BLE001 - translated below
            raise self._translate(exc, digest) from None

    def complete_multipart(
        self, key: str, upload_id: str, parts: list[dict[str, Any]], *, if_absent: bool = False
    ) -> bool:
        """Complete multipart upload ``upload_id`` at ``key`` from ``parts`` (as S3 lists them:
        number, ETag, checksums; in any order). With ``if_absent`` only where no object is at
        ``key`` yet: False if one was (S3's ``PreconditionFailed``), the upload left open."""
        done = [
            {k: p[k] for k in ("PartNumber", "ETag", "ChecksumSHA256", "ChecksumCRC32") if p.get(k)}
            for p in sorted(parts, key=lambda p: int(p["PartNumber"]))
        ]
        try:
            self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": done},
                **({"IfNoneMatch": "*"} if if_absent else {}),
            )
        except Exception as exc:  # noqa: BLE001 - translated below
            if if_absent and _code(exc) == "PreconditionFailed":
                return False
            raise self._translate(exc) from None
        return True

    def streamed_objects(self) -> Iterator[tuple[str, float]]:
        """(key, last modified) of every object under ``streamed/``."""
        paginator = self._client.get_paginator("list_objects_v2")
        root = f"{self.prefix}{STREAMED_ROOT}/"
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=root):
                for obj in page.get("Contents", []):
                    yield str(obj["Key"]), obj["LastModified"].timestamp()
        except Exception as exc:  # noqa: BLE001 - translated below
            raise self._translate(exc) from None

    def streamed_multiparts(self) -> Iterator[tuple[str, str, float]]:
        """(key, S3 upload id, initiated) of every multipart upload open under ``streamed/``."""
        paginator = self._client.get_paginator("list_multipart_uploads")
        root = f"{self.prefix}{STREAMED_ROOT}/"
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=root):
                for up in page.get("Uploads", []):
                    yield str(up["Key"]), str(up["UploadId"]), up["Initiated"].timestamp()
        except Exception as exc:  # noqa: BLE001 - translated below
            raise self._translate(exc) from None

    def _digest_of_key(self, key: str) -> str | None:
        return digest_of_blob_path(key[len(self.prefix) :])

    def translate(self, exc: Exception, digest: str | None = None) -> Exception:
        return self._translate(exc, digest)

    def _translate(self, exc: Exception, digest: str | None = None) -> Exception:
        """botocore's errors, as cairn's."""
        from botocore.exceptions import BotoCoreError, ClientError

        what = f"blob {digest}" if digest else "the object store"
        if isinstance(exc, ClientError):
            code = _code(exc)
            if code in ("NoSuchKey", "404", "NotFound"):
                return location_withheld(
                    BlobNotFoundError(f"{what} is not in {self.location}"), self.location
                )
            if code in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"):
                return DigestMismatchError(
                    f"{what}: the object store refused content with another digest"
                )
            err = CommError(f"{self.location}: {code or 'error'}: {exc}")
            err.public = (
                f"the server's object store answered {code or 'an error'} (its log says more)"
            )
            return err
        if isinstance(exc, BotoCoreError):
            # botocore's text names the endpoint (an internal address): the server logs it
            err = CommError(f"cannot reach {self.location}: {exc}")
            err.public = "the server cannot reach its object store (its log says why)"
            return err
        return exc

    # -- writes --------------------------------------------------------------------------------

    def put(self, digest: str, data: bytes) -> None:
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=self.key_of(digest),
                Body=data,
                ChecksumSHA256=checksum_b64(digest),
            )
        except Exception as exc:  # noqa: BLE001 - translated below
            raise self._translate(exc, digest) from None

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        if len(items) <= 1:
            for d, b in items:
                self.put(d, b)
            return
        with ThreadPoolExecutor(_THREADS) as pool:
            for _ in pool.map(lambda item: self.put(*item), items):
                pass

    def put_file(self, path: str, *, link: bool = False) -> BlobInfo:
        """Hash the file (one read), then upload it with its checksum (a second read)."""
        digest, size = hash_file(path)
        if size <= PART_SIZE:
            with open(path, "rb") as f:
                try:
                    self._client.put_object(
                        Bucket=self.bucket,
                        Key=self.key_of(digest),
                        Body=f,
                        ContentLength=size,
                        ChecksumSHA256=checksum_b64(digest),
                    )
                except Exception as exc:  # noqa: BLE001 - translated below
                    raise self._translate(exc, digest) from None
        else:
            self._put_parts(path, digest)
        return BlobInfo(digest, size)

    def _put_parts(self, path: str, digest: str) -> None:
        """A multipart upload; S3 checks each part's SHA-256, then the whole is read back."""
        staging = f"{self.prefix}uploads/{os.urandom(12).hex()}"
        c = self._client
        try:
            up = c.create_multipart_upload(
                Bucket=self.bucket, Key=staging, ChecksumAlgorithm="SHA256"
            )
            upload_id = up["UploadId"]
            parts = []
            with open(path, "rb") as f:
                number = 1
                while chunk := f.read(PART_SIZE):
                    sha = checksum_b64(digest_bytes(chunk))
                    res = c.upload_part(
                        Bucket=self.bucket,
                        Key=staging,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                        ChecksumSHA256=sha,
                    )
                    parts.append({"PartNumber": number, "ETag": res["ETag"], "ChecksumSHA256": sha})
                    number += 1
            c.complete_multipart_upload(
                Bucket=self.bucket,
                Key=staging,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
            self.adopt(staging, digest)
        except Exception as exc:  # noqa: BLE001 - translated below
            raise self._translate(exc, digest) from None

    def adopt(self, staging_key: str, digest: str) -> int:
        """Verify an object uploaded under ``staging_key`` and copy it to the blob's key; the
        staging object is removed either way. Returns the blob's size.

        Where the store reports the whole object's SHA-256 (a single PUT to S3) that is trusted;
        otherwise (multipart uploads, which S3 checks part by part only, and stores that keep no
        checksums) the object is read back and hashed here before it may take the blob's name."""
        c = self._client
        try:
            size = self._verify(staging_key, digest)
            if size <= PART_SIZE * 64:
                c.copy_object(
                    Bucket=self.bucket,
                    Key=self.key_of(digest),
                    CopySource={"Bucket": self.bucket, "Key": staging_key},
                    ChecksumAlgorithm="SHA256",
                )
            else:  # over CopyObject's 5 GiB: boto3 copies in parts, inside the object store
                c.copy(
                    {"Bucket": self.bucket, "Key": staging_key}, self.bucket, self.key_of(digest)
                )
            return size
        except DigestMismatchError:
            raise
        except Exception as exc:  # noqa: BLE001 - translated below
            raise self._translate(exc, digest) from None
        finally:
            try:
                c.delete_object(Bucket=self.bucket, Key=staging_key)
            except Exception:  # noqa: BLE001 - best effort; a lifecycle rule can sweep uploads/
                pass

    def verify_object(self, key: str, digest: str) -> int:
        """Check that the object at ``key`` has the content ``digest`` names; its size.
        ``DigestMismatchError`` if not (the object is left where it is)."""
        try:
            return self._verify(key, digest)
        except DigestMismatchError:
            raise
        except Exception as exc:  # noqa: BLE001 - translated below
            raise self._translate(exc, digest) from None

    def _verify(self, key: str, digest: str) -> int:
        head = self._client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        if head.get("ChecksumSHA256") == checksum_b64(digest):
            # The store computed the whole object's SHA-256 itself (a single PUT to AWS S3 or
            # MinIO): nothing to read back.
            return int(head["ContentLength"])
        return self._rehash(key, digest)

    # -- reads ---------------------------------------------------------------------------------

    def _rehash(self, key: str, digest: str) -> int:
        body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
        hasher = new_hasher()
        size = 0
        while chunk := body.read(CHUNK):
            hasher.update(chunk)
            size += len(chunk)
        if digest_from_hasher(hasher) != digest:
            raise DigestMismatchError(
                f"upload of blob {digest} has other content (digest mismatch); refused"
            )
        return size

    def _get_body(self, digest: str, key: str | None = None) -> Any:
        try:
            return self._client.get_object(Bucket=self.bucket, Key=key or self.key_of(digest))[
                "Body"
            ]
        except Exception as exc:  # noqa: BLE001 - translated below
            raise self._translate(exc, digest) from None

    def get(self, digest: str, *, key: str | None = None) -> bytes:
        """The blob's bytes, verified; ``key``: where its object is, if not at the digest's key
        (a blob streamed before its digest: the catalog's index names the key)."""
        body = self._get_body(digest, key)
        try:
            data = cast(bytes, body.read())
        except Exception as exc:  # noqa: BLE001 - translated below
            raise self._translate(exc, digest) from None
        if digest_bytes(data) != digest:
            raise location_withheld(
                DigestMismatchError(
                    f"blob {digest} in {self.location} is damaged: its content has another digest"
                ),
                self.location,
            )
        return data

    def get_range(self, digest: str, start: int, length: int, *, key: str | None = None) -> bytes:
        """One ranged GET (``Range: bytes=start-end``); past the end of the blob, no bytes."""
        check_range(start, length)
        if length == 0:
            return b""
        try:
            resp = self._client.get_object(
                Bucket=self.bucket,
                Key=key or self.key_of(digest),
                Range=range_header(start, length),
            )
            return cast(bytes, resp["Body"].read())
        except Exception as exc:  # noqa: BLE001 - translated below
            if _code(exc) == "InvalidRange":
                return b""  # the range starts at or past the end of the blob
            raise self._translate(exc, digest) from None

    def open(self, digest: str, *, key: str | None = None) -> BinaryIO:
        return cast(BinaryIO, BodyReader(self._get_body(digest, key)))

    def copy_to(self, digest: str, dest: str, *, key: str | None = None) -> None:
        body = self._get_body(digest, key)
        hasher = new_hasher()
        try:
            with open(dest, "wb") as out:
                while chunk := body.read(CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - translated below
            raise self._translate(exc, digest) from None
        if digest_from_hasher(hasher) != digest:
            os.unlink(dest)
            raise location_withheld(
                DigestMismatchError(
                    f"blob {digest} in {self.location} is damaged: its content has another digest"
                ),
                self.location,
            )

    def size(self, digest: str) -> int | None:
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self.key_of(digest))
        except Exception as exc:  # noqa: BLE001 - translated below
            err = self._translate(exc, digest)
            if isinstance(err, BlobNotFoundError):
                return None
            raise err from None
        return int(head["ContentLength"])

    def has_many(self, digests: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(digests))
        if not wanted:
            return set()
        with ThreadPoolExecutor(_THREADS) as pool:
            sizes = list(pool.map(self.size, wanted))
        return {d for d, s in zip(wanted, sizes, strict=True) if s is not None}

    def delete_many(self, digests: Iterable[str]) -> int:
        present = sorted(self.has_many(digests))
        self.delete_keys([self.key_of(d) for d in present])
        return len(present)

    def delete_keys(self, keys: Sequence[str]) -> None:
        """Remove the objects at ``keys`` (those gone already count as removed)."""
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            try:
                self._client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True},
                )
            except Exception as exc:  # noqa: BLE001 - translated below
                raise self._translate(exc) from None

    def list(self) -> Iterator[BlobInfo]:
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}{BLOB_ROOT}/"):
                for obj in page.get("Contents", []):
                    digest = self._digest_of_key(obj["Key"])
                    if digest is not None:
                        yield BlobInfo(digest, int(obj["Size"]), obj["LastModified"].timestamp())
        except Exception as exc:  # noqa: BLE001 - translated below
            raise self._translate(exc) from None

    def small_many(self, digests: Sequence[str]) -> dict[str, bytes]:
        return {}

    def get_many(self, digests: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        return get_each(self, digests)

    def indexed_sizes(self, digests: Sequence[str]) -> dict[str, int] | None:
        return None

    def local_path(self, digest: str) -> str | None:
        return None

    def presigned_url(
        self, digest: str, start: int = 0, length: int | None = None, *, key: str | None = None
    ) -> str | None:
        params = {"Bucket": self.bucket, "Key": key or self.key_of(digest)}
        if length is not None:
            params["Range"] = range_header(start, length)  # signed: the URL serves this range
        url: str = self._client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=PRESIGN_SECONDS
        )
        return url

    def presigned_gets(self, digests: Sequence[str]) -> dict[str, tuple[str, int]]:
        out: dict[str, tuple[str, int]] = {}
        for d in dict.fromkeys(digests):
            size = self.size(d)  # (no index: a HEAD each; a server's store has its catalog's)
            url = None if size is None else self.presigned_url(d)
            if size is not None and url is not None:
                out[d] = (url, size)
        return out

    def take_file(self, path: str, digest: str) -> BlobInfo:
        return put_verified_file(self, path, digest)

    def remove_stale_temp(self, older_than: float) -> int:
        return 0  # nothing is written in place: an object appears whole or not at all

    def close(self) -> None:
        self._client.close()


__all__ = ["PART_SIZE", "S3BlobStore", "checksum_b64", "make_client", "parse_s3_url"]
