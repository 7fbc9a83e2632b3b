"""Where a blob lives: ``sha256/ab/cdef...`` below a store's root.

The algorithm, then the first two hex digits of the digest (256 folders, so no folder grows
huge), then the other 62. The local store's files, the objects under an S3 store's prefix, the
download cache and its cleanup all use this one layout, so they read and list each other's trees
alike. Anything else a store keeps (temporary files, and later pack files of small blobs) lives
beside ``sha256/``, never in it.
"""

from __future__ import annotations

from cairn.core._digest import ALGORITHM, PREFIX, Digest, digest_hex, is_digest

BLOB_ROOT = ALGORITHM  # the folder (or key prefix) every blob lives under


def blob_path_parts(digest: str) -> tuple[str, str, str]:
    """``("sha256", "ab", "cdef...")`` for ``sha256:abcdef...``: join them with ``os.path.join``
    or ``"/"``."""
    hexd = digest_hex(digest)
    return BLOB_ROOT, hexd[:2], hexd[2:]


def blob_path(digest: str) -> str:
    """``sha256/ab/cdef...``: the blob's relative path (an S3 key below the store's prefix)."""
    return "/".join(blob_path_parts(digest))


def digest_of_blob_path(path: str) -> Digest | None:
    """The digest whose blob lives at ``path`` (``sha256/ab/cdef...``), or None if ``path`` is
    not a blob's (a temporary file, another store's file)."""
    parts = path.split("/")
    if len(parts) != 3 or parts[0] != BLOB_ROOT or len(parts[1]) != 2:
        return None
    return digest_in_folder(parts[1], parts[2])


def digest_in_folder(folder: str, name: str) -> Digest | None:
    """The digest of the blob named ``name`` in the two-digit folder ``folder``, if it is one."""
    digest = PREFIX + folder + name
    return digest if is_digest(digest) else None  # type: ignore[return-value]
