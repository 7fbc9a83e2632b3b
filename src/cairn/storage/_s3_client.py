"""The boto3 client of an S3 store (``make_client``) and its streaming bodies as files."""

from __future__ import annotations

import io
from typing import Any, cast

from cairn._extras import install_hint
from cairn.errors import UsageError

DEFAULT_REGION = "us-east-1"  # when neither AWS_REGION nor AWS_DEFAULT_REGION is set


class BodyReader(io.RawIOBase):
    """botocore's streaming body as a file object."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._body.read(len(b))
        n = len(data)
        b[:n] = data
        return n

    def read(self, size: int | None = -1) -> bytes:
        return cast(bytes, self._body.read(None if size is None or size < 0 else size))

    def close(self) -> None:
        self._body.close()
        super().close()


def make_client(endpoint: str | None = None, region: str = DEFAULT_REGION) -> Any:
    """A boto3 S3 client of the object store at ``endpoint`` (None: AWS) in ``region``; its
    credentials are boto3's own (the standard AWS variables and files). The server's entry point
    reads the endpoint and region from the environment (``ServerConfig``)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise UsageError(f"an s3:// store needs boto3: {install_hint('s3')}") from None
    # No SigV4 hash of each body (botocore makes one on plain HTTP): every body cairn sends
    # carries its SHA-256 as the signed ``x-amz-checksum-sha256``, which the object store checks.
    s3: dict[str, Any] = {"payload_signing_enabled": False}
    if endpoint:
        s3["addressing_style"] = "path"
    config = Config(
        max_pool_connections=32,
        retries={"mode": "standard", "max_attempts": 5},
        s3=s3,
        signature_version="s3v4",
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint or None, region_name=region, config=config
    )
