"""The seam between the SDK and a store: the Service protocol and its implementations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cairn._lazy import lazy_exports

# The protocol and value types load without the catalog (SQLAlchemy); LocalService and the
# maintenance code load on first use (cairn._lazy).
if TYPE_CHECKING:
    from cairn.service._embedded import embedded_collections, local_user
    from cairn.service._http import HttpService
    from cairn.service._http_cache import CacheCleanupReport, DownloadCache
    from cairn.service._local import LocalService
    from cairn.service._maintenance import (
        DEFAULT_GRACE_SECONDS,
        GcReport,
        ProgressFactory,
        VerifyProblem,
        VerifyReport,
    )
    from cairn.service._maintenance_lock import (
        FileMaintenanceLock,
        MaintenanceLock,
        ThreadMaintenanceLock,
        maintenance_lock_for_catalog,
    )
    from cairn.service._manifests import PackedDigests
    from cairn.service._protocol import (
        CommitRequest,
        CommitResult,
        FinishRequest,
        ImportRequest,
        Service,
        StageRequest,
        VersionExport,
    )
    from cairn.service._search import (
        SEARCH_KINDS,
        VERSION_SORTS,
        SearchRequest,
        SearchResult,
    )
    from cairn.service._wire import (
        API,
        BATCH_TYPE,
        UNNAMED_FROM,
        UNNAMED_UP_TO,
        BatchReader,
        changes_from_json,
        check_digests,
        collection_to_json,
        error_body,
        export_to_json,
        iter_changes,
        key_id_of,
        pack_blobs,
        pack_head,
        packed_chunks,
        packed_size,
        parse_range,
        registry_to_json,
        run_to_json,
        search_result_to_json,
        status_of,
        unpack_blobs,
        verify_blobs,
        version_to_json,
    )


def http_service(
    base_url: str, api_key: str | None, cache_dir: str, *, transfer_threads: int | None = None
) -> Service:
    """The Service for a cairn server at ``base_url`` (``cairn.service._http.HttpService``).

    Imported on first use, so the embedded store never loads the HTTP client."""
    from cairn.service._http import HttpService

    return HttpService(base_url, api_key, cache_dir, transfer_threads=transfer_threads)


__all__ = [
    "DEFAULT_GRACE_SECONDS",
    "CommitRequest",
    "CommitResult",
    "FileMaintenanceLock",
    "FinishRequest",
    "GcReport",
    "ImportRequest",
    "LocalService",
    "MaintenanceLock",
    "ProgressFactory",
    "SEARCH_KINDS",
    "SearchRequest",
    "SearchResult",
    "Service",
    "StageRequest",
    "ThreadMaintenanceLock",
    "VERSION_SORTS",
    "VerifyProblem",
    "VerifyReport",
    "VersionExport",
    "HttpService",
    "CacheCleanupReport",
    "DownloadCache",
    "PackedDigests",
    "http_service",
    "embedded_collections",
    "local_user",
    "maintenance_lock_for_catalog",
    "API",
    "BATCH_TYPE",
    "UNNAMED_FROM",
    "UNNAMED_UP_TO",
    "BatchReader",
    "changes_from_json",
    "check_digests",
    "collection_to_json",
    "error_body",
    "export_to_json",
    "iter_changes",
    "key_id_of",
    "pack_blobs",
    "pack_head",
    "packed_chunks",
    "packed_size",
    "parse_range",
    "registry_to_json",
    "run_to_json",
    "search_result_to_json",
    "status_of",
    "unpack_blobs",
    "verify_blobs",
    "version_to_json",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "._embedded": ["embedded_collections", "local_user"],
        "._http": ["HttpService"],
        "._http_cache": ["CacheCleanupReport", "DownloadCache"],
        "._local": ["LocalService"],
        "._manifests": ["PackedDigests"],
        "._maintenance": [
            "DEFAULT_GRACE_SECONDS",
            "GcReport",
            "ProgressFactory",
            "VerifyProblem",
            "VerifyReport",
        ],
        "._maintenance_lock": [
            "FileMaintenanceLock",
            "MaintenanceLock",
            "ThreadMaintenanceLock",
            "maintenance_lock_for_catalog",
        ],
        "._protocol": [
            "CommitRequest",
            "CommitResult",
            "FinishRequest",
            "ImportRequest",
            "Service",
            "StageRequest",
            "VersionExport",
        ],
        "._search": ["SEARCH_KINDS", "VERSION_SORTS", "SearchRequest", "SearchResult"],
        "._wire": [
            "API",
            "BATCH_TYPE",
            "UNNAMED_FROM",
            "UNNAMED_UP_TO",
            "BatchReader",
            "changes_from_json",
            "check_digests",
            "collection_to_json",
            "error_body",
            "export_to_json",
            "iter_changes",
            "key_id_of",
            "pack_blobs",
            "pack_head",
            "packed_chunks",
            "packed_size",
            "parse_range",
            "registry_to_json",
            "run_to_json",
            "search_result_to_json",
            "status_of",
            "unpack_blobs",
            "verify_blobs",
            "version_to_json",
        ],
    },
)
