"""The SDK: Run, Artifact, entries and the query Api, over the Service protocol."""

from cairn.sdk._api import Api, ApiRun, ArtifactCollection, ArtifactType, Project, Runs
from cairn.sdk._artifact import Artifact, ArtifactFiles
from cairn.sdk._cache_cleanup import CacheCleanupReport, cleanup_cache
from cairn.sdk._entry import ArtifactManifest, ArtifactManifestEntry
from cairn.sdk._objects import Table
from cairn.sdk._operations import (
    DiffReport,
    PutResult,
    add_alias,
    collect_garbage,
    collection_json,
    delete_version,
    diff_versions,
    entry_json,
    get_path,
    iso_time,
    list_collections,
    list_files,
    list_versions,
    put_path,
    remove_alias,
    verify_store,
    version_json,
)
from cairn.sdk._run import (
    Config,
    Run,
    current_run,
    finish,
    init,
    log_artifact,
    log_model,
    use_artifact,
    use_model,
)
from cairn.sdk._settings import Settings, current_service, reset_services
from cairn.sdk._ttl import ArtifactTTL
from cairn.sdk._units import format_size, parse_duration, parse_size

__all__ = [
    "Api",
    "ApiRun",
    "Artifact",
    "ArtifactCollection",
    "ArtifactFiles",
    "ArtifactManifest",
    "ArtifactManifestEntry",
    "ArtifactTTL",
    "ArtifactType",
    "CacheCleanupReport",
    "Config",
    "DiffReport",
    "Project",
    "PutResult",
    "Run",
    "Runs",
    "Settings",
    "Table",
    "add_alias",
    "cleanup_cache",
    "collect_garbage",
    "collection_json",
    "current_run",
    "current_service",
    "delete_version",
    "diff_versions",
    "entry_json",
    "finish",
    "format_size",
    "get_path",
    "init",
    "iso_time",
    "list_collections",
    "list_files",
    "list_versions",
    "log_model",
    "log_artifact",
    "parse_duration",
    "parse_size",
    "put_path",
    "remove_alias",
    "reset_services",
    "use_artifact",
    "use_model",
    "verify_store",
    "version_json",
]
