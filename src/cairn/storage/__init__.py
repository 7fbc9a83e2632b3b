"""Blob stores: content-addressed bytes (local files, S3, memory)."""

from __future__ import annotations

from cairn._lazy import TYPE_CHECKING, lazy_exports

# Loaded on first use (cairn._lazy): the Service protocol needs only BlobInfo, and a listing only
# the file-system check; neither should load the S3 store's thread pool and logging.
if TYPE_CHECKING:
    from cairn.storage._base import (
        BlobInfo,
        BlobStore,
        check_range,
        put_verified_file,
        range_header,
    )
    from cairn.storage._fs import filesystem_type, network_filesystem
    from cairn.storage._hashing import CHUNK, hash_file, hash_stream
    from cairn.storage._local import PACKED_LIMIT, SMALL_LIMIT, LocalBlobStore
    from cairn.storage._local_io import (
        BUSY_SECONDS,
        flock_holder,
        flock_holder_stopped,
        flock_within,
        writer_turn,
    )
    from cairn.storage._memory import MemoryBlobStore
    from cairn.storage._s3 import S3BlobStore, checksum_b64
    from cairn.storage._wrappers import ReadOnlyBlobStore

__all__ = [
    "BUSY_SECONDS",
    "CHUNK",
    "PACKED_LIMIT",
    "SMALL_LIMIT",
    "BlobInfo",
    "BlobStore",
    "LocalBlobStore",
    "MemoryBlobStore",
    "ReadOnlyBlobStore",
    "filesystem_type",
    "hash_file",
    "hash_stream",
    "network_filesystem",
    "put_verified_file",
    "S3BlobStore",
    "check_range",
    "checksum_b64",
    "range_header",
    "writer_turn",
    "flock_holder",
    "flock_holder_stopped",
    "flock_within",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "._base": ["BlobInfo", "BlobStore", "check_range", "put_verified_file", "range_header"],
        "._fs": ["filesystem_type", "network_filesystem"],
        "._hashing": ["CHUNK", "hash_file", "hash_stream"],
        "._local": ["PACKED_LIMIT", "SMALL_LIMIT", "LocalBlobStore"],
        "._local_io": [
            "BUSY_SECONDS",
            "flock_holder",
            "flock_holder_stopped",
            "flock_within",
            "writer_turn",
        ],
        "._memory": ["MemoryBlobStore"],
        "._s3": ["S3BlobStore", "checksum_b64"],
        "._wrappers": ["ReadOnlyBlobStore"],
    },
)
