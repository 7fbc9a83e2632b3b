"""Content digests: SHA-256, written ``sha256:<64 lowercase hex>``.

The algorithm is part of the string so that it can change later without ambiguity.

``Digest`` is the one value for a content digest: a ``NewType`` of ``str``, so it is a plain
string at run time (on the wire, in the catalog and in manifest pages, unchanged) and costs
nothing on the hot path (a million-entry manifest makes no objects for it), while the type
checker tells a checked digest from any string. It is made only here: ``digest_bytes``,
``digest_from_hasher``, ``digest_from_raw`` and ``check_digest`` (which parses one); its parts
are ``digest_hex``, ``digest_raw``, ``short_digest`` (``core/_format.py``) and ``blob_path``
(``core/_layout.py``). Nothing else cuts a digest string apart.
"""

from __future__ import annotations

import hashlib

from cairn._lazy import TYPE_CHECKING
from cairn.errors import ValidationError

if TYPE_CHECKING:
    from typing import NewType

    Digest = NewType("Digest", str)
else:
    # What the NewType is at run time, without loading ``typing`` (and ``re``) into a staging
    # worker: the plain string. Nothing calls ``Digest(...)`` (see below).
    Digest = str

ALGORITHM = "sha256"
PREFIX = "sha256:"
_HEX = "0123456789abcdef"

# The constructors below return their string as a Digest without calling ``Digest(...)``: a
# NewType's call is a Python-level call (about 0.3 us), paid once per file on the hot path.


def digest_bytes(data: bytes | bytearray | memoryview) -> Digest:
    """The digest of ``data``."""
    return PREFIX + hashlib.sha256(data).hexdigest()  # type: ignore[return-value]


def digest_from_hasher(hasher: hashlib._Hash) -> Digest:
    """The digest string of a finished ``hashlib.sha256()`` object."""
    return PREFIX + hasher.hexdigest()  # type: ignore[return-value]


def new_hasher() -> hashlib._Hash:
    """A hasher of the digest algorithm, for streaming."""
    return hashlib.sha256()


def is_digest(value: object) -> bool:
    """Whether ``value`` is a well-formed content digest."""
    return (
        isinstance(value, str)
        and len(value) == 71
        and value.startswith(PREFIX)
        and not value[7:].strip(_HEX)
    )


def check_digest(value: str) -> Digest:
    """Parse a digest: ``value`` if it is well-formed, else ``ValidationError``."""
    if not is_digest(value):
        raise ValidationError(
            f"invalid content digest {value!r}: expected 'sha256:' followed by 64 lowercase hex digits"
        )
    return value  # type: ignore[return-value]


def names_content(value: str) -> bool:
    """Whether a manifest entry's ``digest`` field is a content digest, not the URI a reference
    logged without a checksum keeps there (the prefix alone: cheap, for every entry)."""
    return value.startswith(PREFIX)


def digest_hex(digest: str) -> str:
    """The hex part of a digest (used to name blobs)."""
    return check_digest(digest)[len(PREFIX) :]


def digest_raw(digest: str) -> bytes:
    """The 32 bytes a digest names (how the embedded store and the wire format keep it)."""
    # Called for every blob of a commit's presence check: two C calls instead of the regular
    # expression, the same rule (``fromhex`` alone would also take upper case and spaces).
    if isinstance(digest, str) and len(digest) == 71 and digest.startswith(PREFIX):
        try:
            raw = bytes.fromhex(digest[7:])
        except ValueError:
            raw = b""
        if len(raw) == 32 and raw.hex() == digest[7:]:
            return raw
    return bytes.fromhex(digest_hex(digest))  # raises ValidationError


def digest_from_raw(raw: bytes) -> Digest:
    """The digest string of 32 raw bytes (the inverse of ``digest_raw``; not checked)."""
    return PREFIX + raw.hex()  # type: ignore[return-value]
