"""The SDK: Run, Artifact, entries and the query Api, over the Service protocol."""

from cairn._lazy import TYPE_CHECKING, lazy_exports

# Each module loads when one of its names is first read (cairn._lazy): the CLI's parser and
# `import cairn` do not pay for the store.
if TYPE_CHECKING:
    from cairn.core import (
        display_time,
        format_size,
        iso_time,
        short_digest,
    )
    from cairn.sdk._api import (
        Api,
        Project,
    )
    from cairn.sdk._api_collections import (
        ArtifactCollection,
        Artifacts,
        ArtifactType,
    )
    from cairn.sdk._api_runs import (
        ApiRun,
        Runs,
    )
    from cairn.sdk._artifact import (
        Artifact,
    )
    from cairn.sdk._bundle import (
        export_bundle,
        export_to,
        import_bundle,
        import_from,
    )
    from cairn.sdk._cache_cleanup import (
        CacheCleanupReport,
        cleanup_cache,
    )
    from cairn.sdk._entry import (
        ArtifactFiles,
        ArtifactManifest,
        ArtifactManifestEntry,
    )
    from cairn.sdk._init import (
        active_summary,
        define_metric,
        finish,
        init,
        log,
        log_artifact,
        log_model,
        use_artifact,
        use_model,
    )
    from cairn.sdk._listing import (
        collection_json,
        list_collections,
    )
    from cairn.sdk._login import (
        login,
    )
    from cairn.sdk._objects import (
        Table,
    )
    from cairn.sdk._operations import (
        DiffReport,
        PutResult,
        add_alias,
        collect_garbage,
        delete_version,
        diff_versions,
        entry_json,
        get_path,
        link_version,
        list_files,
        list_registries,
        list_versions,
        put_path,
        remove_alias,
        verify_store,
        version_json,
    )
    from cairn.sdk._registry import (
        Registry,
    )
    from cairn.sdk._run import (
        Config,
        Run,
        current_run,
    )
    from cairn.sdk._session import (
        Session,
        current_service,
        current_session,
        reset_services,
    )
    from cairn.sdk._settings import (
        Settings,
    )
    from cairn.sdk._sync import (
        open_store,
        parse_since,
        sync,
        sync_stores,
    )
    from cairn.sdk._sync_plan import (
        SyncOptions,
        SyncReport,
    )
    from cairn.sdk._tables import JoinedTable, PartitionedTable
    from cairn.sdk._ttl import (
        ArtifactTTL,
    )
    from cairn.sdk._units import (
        parse_duration,
        parse_size,
    )

__all__ = [
    "Api",
    "ApiRun",
    "Artifact",
    "ArtifactCollection",
    "ArtifactFiles",
    "Artifacts",
    "ArtifactManifest",
    "ArtifactManifestEntry",
    "ArtifactTTL",
    "ArtifactType",
    "CacheCleanupReport",
    "Config",
    "DiffReport",
    "Project",
    "PutResult",
    "Registry",
    "Run",
    "Runs",
    "Session",
    "Settings",
    "SyncOptions",
    "SyncReport",
    "Table",
    "JoinedTable",
    "PartitionedTable",
    "active_summary",
    "add_alias",
    "cleanup_cache",
    "collect_garbage",
    "collection_json",
    "current_run",
    "current_service",
    "current_session",
    "define_metric",
    "delete_version",
    "diff_versions",
    "entry_json",
    "export_bundle",
    "export_to",
    "display_time",
    "finish",
    "format_size",
    "get_path",
    "import_bundle",
    "import_from",
    "init",
    "iso_time",
    "list_collections",
    "list_files",
    "link_version",
    "list_registries",
    "list_versions",
    "log",
    "log_model",
    "login",
    "log_artifact",
    "open_store",
    "parse_duration",
    "parse_since",
    "parse_size",
    "put_path",
    "remove_alias",
    "short_digest",
    "reset_services",
    "sync",
    "sync_stores",
    "use_artifact",
    "use_model",
    "verify_store",
    "version_json",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "._api": ["Api", "Project"],
        "._api_collections": ["ArtifactCollection", "Artifacts", "ArtifactType"],
        "._api_runs": ["ApiRun", "Runs"],
        "._artifact": ["Artifact"],
        "._cache_cleanup": ["CacheCleanupReport", "cleanup_cache"],
        "._entry": ["ArtifactFiles", "ArtifactManifest", "ArtifactManifestEntry"],
        "._login": ["login"],
        "._objects": ["Table"],
        "._listing": ["collection_json", "list_collections"],
        "._tables": ["JoinedTable", "PartitionedTable"],
        "._operations": [
            "DiffReport",
            "PutResult",
            "add_alias",
            "collect_garbage",
            "delete_version",
            "diff_versions",
            "entry_json",
            "get_path",
            "link_version",
            "list_files",
            "list_registries",
            "list_versions",
            "put_path",
            "remove_alias",
            "verify_store",
            "version_json",
        ],
        "._registry": ["Registry"],
        "._init": [
            "active_summary",
            "define_metric",
            "finish",
            "init",
            "log",
            "log_artifact",
            "log_model",
            "use_artifact",
            "use_model",
        ],
        "._run": ["Config", "Run", "current_run"],
        "._session": ["Session", "current_service", "current_session", "reset_services"],
        "._settings": ["Settings"],
        "._bundle": ["export_bundle", "export_to", "import_bundle", "import_from"],
        "._sync": ["open_store", "parse_since", "sync", "sync_stores"],
        "._sync_plan": ["SyncOptions", "SyncReport"],
        "._ttl": ["ArtifactTTL"],
        "._units": ["parse_duration", "parse_size"],
        # Formatting is core's (core/_format.py), re-exported for the CLI and the web UI.
        "cairn.core": ["display_time", "format_size", "iso_time", "short_digest"],
    },
)
