"""Content digests: SHA-256, written ``sha256:<64 lowercase hex>``.

The algorithm is part of the string so that it can change later without ambiguity.
"""

from __future__ import annotations

import hashlib
import re

from cairn.errors import ValidationError

ALGORITHM = "sha256"
PREFIX = "sha256:"
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def digest_bytes(data: bytes | bytearray | memoryview) -> str:
    """The digest of ``data``."""
    return PREFIX + hashlib.sha256(data).hexdigest()


def digest_from_hasher(hasher: hashlib._Hash) -> str:
    """The digest string of a finished ``hashlib.sha256()`` object."""
    return PREFIX + hasher.hexdigest()


def new_hasher() -> hashlib._Hash:
    """A hasher of the digest algorithm, for streaming."""
    return hashlib.sha256()


def is_digest(value: object) -> bool:
    """Whether ``value`` is a well-formed content digest."""
    return isinstance(value, str) and _DIGEST_RE.match(value) is not None


def check_digest(value: str) -> str:
    """Return ``value`` if it is a well-formed digest, else raise ``ValidationError``."""
    if not is_digest(value):
        raise ValidationError(
            f"invalid content digest {value!r}: expected 'sha256:' followed by 64 lowercase hex digits"
        )
    return value


def digest_hex(digest: str) -> str:
    """The hex part of a digest (used to name blobs)."""
    return check_digest(digest)[len(PREFIX) :]


def digest_raw(digest: str) -> bytes:
    """The 32 bytes a digest names (how the embedded store and the wire format keep it)."""
    return bytes.fromhex(digest_hex(digest))


def digest_from_raw(raw: bytes) -> str:
    """The digest string of 32 raw bytes (the inverse of ``digest_raw``; not checked)."""
    return PREFIX + raw.hex()
